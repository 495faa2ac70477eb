"""``linky-stream status``: the pipeline at a glance, from Kafka and the workers' HTTP.

    linky-stream status [--worker URL ...] [--json] [--max-lag-seconds 300] [--max-failure-ratio 0.01]

- from Kafka: the readings topic's partitions, their end offsets and the consumer group's
  committed offsets (lag = end - committed);
- from each worker's ``GET /status`` (stream/ops.py): the partitions it processes (the owner),
  the lag age of each (now minus the event time of its last processed reading), readiness,
  table recovery progress, Redis state and the publish failure rate.

Exit status: 0 when everything is fine; 1 when something is wrong (listed under "problems", also
in ``--json``): a worker unreachable or not ready, a partition without an owner, a partition
whose lag age exceeds ``--max-lag-seconds`` while messages wait, Redis down on a worker, a
publish failure share above ``--max-failure-ratio``, Kafka unreachable; 2 on bad usage.

Workers: ``--worker`` (repeatable), else ``LINKY_STATUS_WORKERS`` (space-separated URLs), else
this machine's worker (``LINKY_WEB_CANONICAL_URL`` / ``http://LINKY_WEB_HOST:LINKY_WEB_PORT``).
No Faust import (it runs where no worker runs).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import urllib.error
import urllib.request
from typing import Any

from stream.settings import Settings


def fetch_worker(url: str, timeout: float) -> dict[str, Any]:
    """A worker's ``/status`` document, or ``{"url", "error"}`` when it cannot be read."""
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/status", timeout=timeout) as r:
            doc = json.loads(r.read())
        doc["url"] = url
        return doc
    except (OSError, ValueError) as exc:
        return {"url": url, "error": f"{exc}"}


async def kafka_offsets(bootstrap: str, topic: str, group: str, timeout: float) -> dict[str, Any]:
    """``{"partitions": {p: {"end", "committed"}}}`` or ``{"error": ...}``."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000),
                                enable_auto_commit=False)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000))
    try:
        await asyncio.wait_for(consumer.start(), timeout)
        await asyncio.wait_for(admin.start(), timeout)
        described = await asyncio.wait_for(admin.describe_topics([topic]), timeout)
        parts = {p["partition"] for d in described if d.get("topic") == topic and not d.get("error_code")
                 for p in d.get("partitions", [])}
        if not parts:
            return {"error": f"topic {topic} not found"}
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        ends = await asyncio.wait_for(consumer.end_offsets(tps), timeout)
        committed = await asyncio.wait_for(admin.list_consumer_group_offsets(group, partitions=tps), timeout)
        out = {}
        for tp in tps:
            meta = committed.get(tp)
            off = meta.offset if meta is not None and meta.offset >= 0 else None
            out[tp.partition] = {"end": ends[tp], "committed": off}
        return {"partitions": out}
    except Exception as exc:  # unreachable broker, unknown group...
        return {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        for client in (consumer, admin):
            try:
                await client.stop() if client is consumer else await admin.close()
            except Exception:
                pass


def build_report(kafka: dict[str, Any], workers: list[dict[str, Any]], *, topic: str, group: str,
                 max_lag_seconds: float, max_failure_ratio: float) -> dict[str, Any]:
    """Join Kafka's offsets and the workers' views; list the problems (pure: unit-tested)."""
    problems: list[str] = []
    owners: dict[int, tuple[str, dict[str, Any]]] = {}
    worker_rows = []
    for doc in workers:
        url = doc["url"]
        if "error" in doc:
            problems.append(f"worker {url} unreachable: {doc['error']}")
            worker_rows.append({"url": url, "reachable": False, "error": doc["error"]})
            continue
        ready = doc.get("ready", {})
        checks = ready.get("checks", {})
        redis = doc.get("redis", {})
        row = {"url": url, "reachable": True, "ready": bool(ready.get("ready")),
               "not_ready": ready.get("not_ready", []),
               "recovery": {k: v for k, v in checks.get("tables", {}).items() if k != "ok"},
               "redis": redis, "active": [p["partition"] for p in doc.get("partitions", [])
                                          if p.get("topic") == topic]}
        worker_rows.append(row)
        if not row["ready"]:
            details = "; ".join(f"{n}: {checks.get(n, {}).get('detail', '?')}" for n in row["not_ready"])
            problems.append(f"worker {url} not ready ({details})")
        redis_check = checks.get("redis", {})
        if not redis.get("up", True) or redis_check.get("ok") is False:
            problems.append(f"worker {url}: Redis down ({redis_check.get('detail', 'publisher down')})")
        ratio = redis.get("failed_ratio")
        if ratio is not None and ratio > max_failure_ratio:
            problems.append(f"worker {url}: {ratio:.1%} of Redis publishes fail (max {max_failure_ratio:.1%})")
        for p in doc.get("partitions", []):
            if p.get("topic") == topic:
                owners[p["partition"]] = (url, p)
    partitions = []
    if "error" in kafka:
        problems.append(f"kafka: {kafka['error']}")
        numbers = sorted(owners)
    else:
        numbers = sorted(kafka["partitions"])
    for n in numbers:
        k = kafka.get("partitions", {}).get(n, {})
        owner, wp = owners.get(n, (None, {}))
        end, committed = k.get("end"), k.get("committed")
        lag = None if end is None else end - (committed or 0)
        lag_seconds = wp.get("lag_seconds")
        partitions.append({"partition": n, "owner": owner, "end": end, "committed": committed,
                           "lag": lag, "lag_seconds": lag_seconds})
        if owner is None:
            problems.append(f"partition {n} has no owner among the workers asked")
        elif lag_seconds is not None and lag_seconds > max_lag_seconds and (lag or 0) > 0:
            problems.append(f"partition {n} is {lag_seconds:.0f} s behind ({lag} messages waiting)")
    return {"ok": not problems, "problems": problems, "topic": topic, "group": group,
            "partitions": partitions, "workers": worker_rows}


def render(report: dict[str, Any]) -> None:
    """The report as rich tables on stdout."""
    from rich.console import Console, Group
    from rich.progress_bar import ProgressBar
    from rich.table import Table
    from rich.text import Text

    console = Console()
    parts = Table(title=f"{report['topic']} (group {report['group']})")
    for col in ("partition", "owner", "committed", "end", "lag", "lag age"):
        parts.add_column(col, justify="right" if col not in {"owner"} else "left")
    for p in report["partitions"]:
        age = "-" if p["lag_seconds"] is None else f"{p['lag_seconds']:.1f} s"
        parts.add_row(str(p["partition"]), p["owner"] or Text("none", style="bold red"),
                      str(p["committed"] if p["committed"] is not None else "-"),
                      str(p["end"] if p["end"] is not None else "-"),
                      str(p["lag"] if p["lag"] is not None else "-"), age)
    console.print(parts)
    workers = Table(title="workers")
    for col in ("worker", "ready", "partitions", "recovery", "redis", "publish failures"):
        workers.add_column(col)
    for w in report["workers"]:
        if not w["reachable"]:
            workers.add_row(w["url"], Text("unreachable", style="bold red"), "-", "-", "-", "-")
            continue
        rec = w.get("recovery", {})
        if rec.get("in_progress"):
            total = max(1, int(rec.get("active_total") or 0))
            done = total - int(rec.get("active_remaining") or 0)
            recovery: Any = Group(ProgressBar(total=total, completed=done, width=24),
                                  Text(f"{rec.get('active_remaining')} records to go"))
        else:
            recovery = Text("done" if rec.get("completed") else "not started",
                            style="green" if rec.get("completed") else "yellow")
        redis = w.get("redis", {})
        ratio = redis.get("failed_ratio")
        failures = "-" if ratio is None else f"{ratio:.2%} ({redis.get('failed_per_second') or 0:.2f}/s)"
        ready = Text("ready", style="green") if w["ready"] else Text(
            "not ready: " + ", ".join(w["not_ready"]), style="bold red")
        workers.add_row(w["url"], ready, ",".join(map(str, w["active"])) or "-", recovery,
                        Text("up", style="green") if redis.get("up") else Text("down", style="bold red"), failures)
    console.print(workers)
    if report["problems"]:
        for problem in report["problems"]:
            console.print(f"[bold red]✗[/] {problem}", highlight=False)
    else:
        console.print("[bold green]✓ all partitions owned, workers ready, Redis up[/]")


def main(argv: list[str] | None = None) -> int:
    cfg = Settings.from_env()
    parser = argparse.ArgumentParser(prog="linky-stream status", description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", action="append", metavar="URL", help="a worker's web URL (repeatable)")
    parser.add_argument("--bootstrap", default=cfg.kafka_bootstrap)
    parser.add_argument("--topic", default=cfg.readings_topic)
    parser.add_argument("--group", default=cfg.app_id, help="the workers' consumer group (LINKY_APP_ID)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--max-lag-seconds", type=float, default=300.0)
    parser.add_argument("--max-failure-ratio", type=float, default=0.01)
    parser.add_argument("--timeout", type=float, default=5.0)
    args = parser.parse_args(argv)
    urls = args.worker or cfg.status_workers.split() or [default_worker_url(cfg)]
    workers = [fetch_worker(u, args.timeout) for u in urls]
    kafka = asyncio.run(kafka_offsets(args.bootstrap, args.topic, args.group, args.timeout))
    report = build_report(kafka, workers, topic=args.topic, group=args.group,
                          max_lag_seconds=args.max_lag_seconds, max_failure_ratio=args.max_failure_ratio)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        render(report)
    return 0 if report["ok"] else 1


def default_worker_url(cfg: Settings) -> str:
    if cfg.web_canonical_url:
        return cfg.web_canonical_url
    host = "127.0.0.1" if cfg.web_host in {"", "0.0.0.0", "::"} else cfg.web_host
    return f"http://{host}:{cfg.web_port}"
