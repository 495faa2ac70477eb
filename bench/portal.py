"""Portal load benchmark: N concurrent SSE clients on ONE portal process, each on its own PDL,
one PUBLISH per PDL per second; Redis-publish-to-client latency, the portal's CPU and RSS.

    .venv/bin/python bench/portal.py [--clients 1000] [--seconds 30] [--warmup 5]

On the local stack's redis-server (started if needed, ACL user linky-portal for the portal,
linky-admin for the publisher, as the worker would publish). The portal runs as its own process
(``python -m stream portal``) pinned to CPU 0 when ``taskset`` exists; this process (the
clients and the publisher) runs on the other core. Each payload carries its publish time; a
client's latency is its receive time minus that (same machine, same clock). Clients are plain
aiohttp streaming GETs with a Bearer token (an EventSource sends the cookie instead: same path
in the portal after authentication). The portal's CPU is its utime+stime over the measured
window (Linux /proc), RSS its VmRSS at the end and VmHWM (peak). Not a timed test: figures are
for this machine (see docs/portal.md "Load").

Targets (issue #12): p99 under 50 ms, RSS under 200 MB, no client starved (every client gets at
least 90 % of its PDL's publishes in the window).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import redis.asyncio as aioredis

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from deploy.local import stack as local_stack  # noqa: E402
from portal.auth import issue_token  # noqa: E402

SECRET = b"bench-secret-bench-secret-bench-secret-0123"
TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def proc_mem_mb(pid: int) -> tuple[float, float]:
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024


class Client:
    def __init__(self, pdl: str) -> None:
        self.pdl = pdl
        self.samples: list[tuple[float, float]] = []  # (publish time, receive time)
        self.ready = asyncio.Event()
        self.measuring = False

    async def run(self, session: aiohttp.ClientSession, url: str, token: str) -> None:
        async with session.get(f"{url}/api/pdl/{self.pdl}/events", headers={"Authorization": f"Bearer {token}"}) as r:
            if r.status != 200:
                raise RuntimeError(f"SSE refused: {r.status}")
            name = ""
            async for raw in r.content:
                if raw.startswith(b"event: "):
                    name = raw[7:].strip().decode()
                    if name == "ready":
                        self.ready.set()
                elif raw.startswith(b"data: ") and name == "live":
                    now = time.time()
                    if self.measuring:
                        self.samples.append((json.loads(raw[6:])["t"], now))


async def publisher(redis_url: str, pdls: list[str], stop: asyncio.Event, sent: dict[str, list[float]]) -> None:
    """One PUBLISH per PDL per second, spread evenly over the second (pipelined in 20 slices)."""
    client = aioredis.from_url(redis_url)
    slices = 20
    per = max(1, len(pdls) // slices)
    seq = 0
    try:
        start = time.monotonic()
        tick = 0
        while not stop.is_set():
            group = pdls[(tick % slices) * per:(tick % slices + 1) * per]
            pipe = client.pipeline(transaction=False)
            for pdl in group:
                seq += 1
                t = time.time()
                pipe.publish(f"linky:{pdl}:live", json.dumps({"pdl": pdl, "t": t, "seq": seq,
                                                             "power_va": seq % 9000, "time": "bench"}))
                sent.setdefault(pdl, []).append(t)
            await pipe.execute()
            tick += 1
            await asyncio.sleep(max(0.0, start + tick / slices - time.monotonic()))
    finally:
        await client.aclose()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


async def main_async(args: argparse.Namespace) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, args.clients * 2 + 256)), hard))
    cfg = local_stack.StackConfig.from_env()
    local_stack.up(cfg, quiet=True)
    tmp = Path(tempfile.mkdtemp(prefix="bench-portal-"))
    (tmp / "jwt.secret").write_text(SECRET.decode())
    port, metrics_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LINKY_PORTAL")}
    env.update(LINKY_PORTAL_PORT=str(port), LINKY_PORTAL_METRICS_PORT=str(metrics_port),
               LINKY_PORTAL_REDIS_URL=cfg.redis_url, LINKY_PORTAL_REDIS_USERNAME="linky-portal",
               LINKY_PORTAL_REDIS_PASSWORD_FILE=str(cfg.redis_password_file("linky-portal")),
               LINKY_PORTAL_JWT_SECRET_FILE=str(tmp / "jwt.secret"), LINKY_LOG_LEVEL="WARNING",
               PYTHONPATH=str(REPO))  # fmt: skip
    cmd = [sys.executable, "-m", "stream", "portal"]
    if shutil.which("taskset") and os.cpu_count() and os.cpu_count() > 1:  # type: ignore[operator]
        cmd = ["taskset", "-c", "0", *cmd]
        os.sched_setaffinity(0, set(range(1, os.cpu_count() or 2)))
    log = open(tmp / "portal.log", "wb")
    portal = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    clients = [Client(f"9{i:013d}") for i in range(args.clients)]
    stop = asyncio.Event()
    sent: dict[str, list[float]] = {}
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or portal.poll() is not None:
                    raise RuntimeError(f"portal did not start; see {tmp / 'portal.log'}") from None
                await asyncio.sleep(0.1)
        base_rss = proc_mem_mb(portal.pid)[0]
        connector = aiohttp.TCPConnector(limit=0, force_close=False)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None)) as session:
            tasks = []
            t_connect = time.monotonic()
            for i in range(0, len(clients), 100):
                for c in clients[i:i + 100]:
                    tasks.append(asyncio.create_task(c.run(session, url, issue_token(SECRET, [c.pdl], 3600))))
                await asyncio.sleep(0.05)
            await asyncio.wait_for(asyncio.gather(*(c.ready.wait() for c in clients)), 120)
            connect_s = time.monotonic() - t_connect
            pub = asyncio.create_task(publisher(cfg.redis_admin_url, [c.pdl for c in clients], stop, sent))
            await asyncio.sleep(args.warmup)
            for c in clients:
                c.measuring = True
            w0 = time.time()
            cpu0, wall0 = proc_cpu_seconds(portal.pid), time.monotonic()
            await asyncio.sleep(args.seconds)
            cpu1, wall1 = proc_cpu_seconds(portal.pid), time.monotonic()
            w1 = time.time()
            await asyncio.sleep(1.0)  # let in-flight messages of the window arrive
            for c in clients:
                c.measuring = False
            rss, hwm = proc_mem_mb(portal.pid)
            stop.set()
            await pub
            failed = [t for t in tasks if t.done() and t.exception() is not None]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{metrics_port}/metrics") as r:
            metrics_text = await r.text()
    finally:
        portal.send_signal(signal.SIGTERM)
        try:
            portal.wait(timeout=20)
        except subprocess.TimeoutExpired:
            portal.kill()
        log.close()
    # the window: payloads published between w0 and w1, received at any time until the end
    counts = {pdl: sum(1 for t in ts if w0 <= t <= w1) for pdl, ts in sent.items()}
    got = {c.pdl: [r - t for t, r in c.samples if w0 <= t <= w1] for c in clients}
    lat = [x for xs in got.values() for x in xs]
    shares = [len(got[c.pdl]) / counts[c.pdl] if counts.get(c.pdl) else 0.0 for c in clients]
    dropped = sum(float(line.rsplit(" ", 1)[1]) for line in metrics_text.splitlines()
                  if line.startswith("linky_portal_sse_dropped_total "))
    report = {
        "clients": args.clients, "seconds": args.seconds, "publishes": sum(counts.values()),
        "received": len(lat), "connect_all_s": round(connect_s, 2),
        "latency_ms": {"p50": round(percentile(lat, 0.50) * 1000, 2), "p99": round(percentile(lat, 0.99) * 1000, 2),
                       "max": round(max(lat) * 1000, 2) if lat else None},
        "portal_cpu_percent_of_one_core": round(100 * (cpu1 - cpu0) / (wall1 - wall0), 1),
        "portal_rss_mb": round(rss, 1), "portal_peak_rss_mb": round(hwm, 1), "portal_rss_idle_mb": round(base_rss, 1),
        "min_client_share": round(min(shares), 3), "clients_below_90pct": sum(1 for s in shares if s < 0.9),
        "sse_dropped": dropped, "client_errors": len(failed),
    }
    print(json.dumps(report, indent=2))
    ok = report["latency_ms"]["p99"] < 50 and hwm < 200 and report["clients_below_90pct"] == 0 and not failed
    print("targets (p99 < 50 ms, RSS < 200 MB, no client starved):", "met" if ok else "NOT met", file=sys.stderr)
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
