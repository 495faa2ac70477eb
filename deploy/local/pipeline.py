"""The main job (``make run``): the whole pipeline on one machine, on the local stack.

    python -m deploy.local.pipeline                       # simulated meters on pseudo-terminals
    python -m deploy.local.pipeline --device /dev/serial/by-id/usb-...   # a real dongle

It brings the stack up, then starts, each as its own process with its log under ``.stack/logs/``:

1. ``teleinfo simulate --pty`` — simulated Linky meters (unless ``--device`` is given);
2. ``teleinfo publish DEVICE...`` — the edge reader: decode, validate, spool, publish to Kafka;
3. ``linky-stream worker`` — the Faust worker: tables in RocksDB, Redis channels, HTTP, /metrics;
4. ``linky-stream portal`` — the customer portal (docs/portal.md) on 127.0.0.1:6080, shared-secret
   mode with ``.stack/secrets/portal-jwt.secret``; a login URL with a demo token is printed for
   each simulated meter;
5. contracts for the simulated producer PDLs (virtual battery), when the contract CLI exists;
6. a demo gateway (``linky-stream gateway add gw-demo``) provisioned for the simulated meters: the
   edge signs with its key file, the worker refuses unsigned readings. Every Kafka client uses the
   SASL_SSL listener with its own SCRAM user (docs/security.md).

and summarises what arrives on Redis (``linky:*``) per PDL until Ctrl-C or ``--duration`` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from stream import clock
from stream.settings import Settings
from deploy.local import stack as local_stack
from teleinfo.publisher import ensure_topic

PARIS = ZoneInfo("Europe/Paris")
EDGE_METRICS_PORT = int(os.environ.get("LINKY_EDGE_METRICS_PORT") or 9105)
DEMO_TOKEN_TTL = 12 * 3600.0
SUMMARY_SECONDS = 5.0


@dataclass
class Pipeline:
    cfg: local_stack.StackConfig
    env: dict[str, str]
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def spawn(self, name: str, args: list[str], *, capture_stdout: bool = False,
              env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = open(self.cfg.logs / f"{name}.log", "ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", *args], env={**self.env, **(env or {})}, cwd=local_stack.REPO_ROOT,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE if capture_stdout else log, stderr=log,
            start_new_session=True,
        )
        self.procs[name] = proc
        _say(f"{name}: started (pid {proc.pid}), log {self.cfg.logs / f'{name}.log'}")
        return proc

    def stop_all(self) -> None:
        for name, proc in reversed(list(self.procs.items())):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        for name, proc in reversed(list(self.procs.items())):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            _say(f"{name}: stopped (exit {proc.returncode})")

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with code {proc.returncode}; see {self.cfg.logs / f'{name}.log'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.local.pipeline", description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", action="append", default=[], help="read this dongle instead of simulated meters")
    parser.add_argument("--meters", type=int, default=4, help="simulated meters (default 4, two producers among them)")
    parser.add_argument("--speed", type=float, default=20.0,
                        help="simulated meters run N times faster than real time (default 20)")
    parser.add_argument("--start", help="simulated start (default: today 11:00 Europe/Paris, sunny hours)")
    parser.add_argument("--seed", type=int,
                        help="simulator seed (default: new per run, so each run has new meters whose clock can "
                             "start again at 11:00 without being taken for old readings)")
    parser.add_argument("--duration", type=float, help="stop after this many seconds (default: until Ctrl-C)")
    parser.add_argument("--verbose", action="store_true", help="print every Redis message, not a summary")
    args = parser.parse_args(argv)

    cfg = local_stack.StackConfig.from_env()
    local_stack.up(cfg)
    env = dict(os.environ, LINKY_KAFKA_BOOTSTRAP=cfg.bootstrap_servers, LINKY_REDIS_URL=cfg.redis_url,
               LINKY_REDIS_USERNAME="linky-worker",
               LINKY_REDIS_PASSWORD_FILE=str(cfg.redis_password_file("linky-worker")),
               LINKY_DATADIR=str(cfg.stack_dir / "worker-data"), PYTHONUNBUFFERED="1")
    pipeline = Pipeline(cfg, env)
    try:
        devices = list(args.device)
        pdls: list[str] = []
        if not devices:
            start = args.start or clock.now_paris().replace(hour=11, minute=0, second=0, microsecond=0).isoformat()
            sim = pipeline.spawn("simulator", [
                "teleinfo", "simulate", "--pty", *_demo_meters(args.meters), "--speed", str(args.speed),
                "--start", start, "--seed", str(args.seed or 2 + int(time.time()) % 997),
                "--link-dir", str(cfg.stack_dir / "meters"), "--json",
                "--truth", str(cfg.stack_dir / "truth.json"),
            ], capture_stdout=True)
            meters = _read_meter_lines(sim, args.meters)
            devices = [m.get("link") or m["path"] for m in meters]
            pdls = [m["pdl"] for m in meters]
            for m in meters:
                _say(f"simulated meter {m['pdl']}: {m.get('description', '')} on {m.get('link') or m['path']}")
        # Everything Kafka goes over the SASL_SSL listener (TLS + SCRAM + ACLs, docs/security.md),
        # each process with its own user; the operators' CLIs as the admin.
        admin_env = cfg.kafka_client_env("linky-admin")
        asyncio.run(ensure_topic(cfg.bootstrap_servers, Settings.from_env().readings_topic,
                                 Settings.from_env().topic_partitions))  # the edge may not create it
        key_file = cfg.secrets_dir / "gateway-demo.key"
        signing = bool(pdls)
        if signing:  # simulated meters: one demo gateway provisioned for all of them
            _run_cli(pipeline, admin_env, ["gateway", "add", "gw-demo", *[a for p in pdls for a in ("--pdl", p)],
                                           "--key-file", str(key_file)])
        else:
            _say("a real dongle's PDL is not known in advance: its readings go unsigned (LINKY_GATEWAY_ACCEPT_UNSIGNED)")
        # Contracts first: readings and contracts travel on two topics with no order between them.
        _set_demo_contracts(pipeline, meters if not args.device else [], env=admin_env)
        # a stack kept from a version before the one-state design: convert it (no worker runs yet)
        _run_cli(pipeline, cfg.kafka_client_env("linky-worker"), ["migrate-state"])
        pipeline.spawn("worker", ["stream", "worker", "-l", "info"], env={
            **cfg.kafka_client_env("linky-worker"), "LINKY_GATEWAY_ACCEPT_UNSIGNED": "false" if signing else "true",
            # the simulator runs --speed times faster than the clock from 11:00 today: its readings
            # are soon "in the future"; the demo tolerates two days of that
            "LINKY_TRUST_MAX_FUTURE_SECONDS": os.environ.get("LINKY_TRUST_MAX_FUTURE_SECONDS", str(2 * 86400))})
        portal_env = portal_settings(cfg)
        pipeline.env.update(portal_env)
        pipeline.spawn("portal", ["stream", "portal"], env=cfg.kafka_client_env("linky-portal"))
        if signing:  # a worker's first start: let it load the registry before readings arrive
            _wait_registry(pipeline, pdls)
        pipeline.spawn("edge", ["teleinfo", "publish", *devices, "--metrics-port", str(EDGE_METRICS_PORT),
                                "--spool-dir", str(cfg.stack_dir / "spool")],
                       env={**cfg.kafka_client_env("linky-edge"),
                            "LINKY_EDGE_GATEWAY_KEY_FILE": str(key_file) if signing else ""})
        _print_help(cfg, pdls)
        _print_portal_urls(cfg, portal_env, pdls)
        asyncio.run(_watch_redis(cfg.redis_admin_url, pipeline, args.duration, args.verbose, pdls))
    except KeyboardInterrupt:
        pass
    except RuntimeError as exc:
        _say(f"ERROR: {exc}")
        return 1
    finally:
        pipeline.stop_all()
    return 0


DEMO_METERS = [  # the simulator's default mix, with generous solar so producers inject even in winter
    "standard,mono,consumer,hchp", "standard,tri,producer,tempo,kva=12,pv=9",
    "historic,mono,consumer,tempo", "standard,mono,producer,base,pv=6", "historic,tri,consumer,base,kva=12",
]


def _demo_meters(count: int) -> list[str]:
    return [arg for i in range(count) for arg in ("--meter", DEMO_METERS[i % len(DEMO_METERS)])]


def _read_meter_lines(sim: subprocess.Popen[bytes], count: int) -> list[dict]:
    assert sim.stdout is not None
    meters = []
    deadline = time.monotonic() + 30
    while len(meters) < count and time.monotonic() < deadline:
        line = sim.stdout.readline()
        if not line:
            raise RuntimeError("the simulator exited before announcing its meters; see .stack/logs/simulator.log")
        with contextlib.suppress(json.JSONDecodeError):
            meters.append(json.loads(line))
    return meters


# Demo price grids (TTC, EUR/kWh and EUR/month): plausible 2026 figures for the demo, not a quote.
DEMO_TARIFFS = {
    "base": ["--price", "BASE=0.1952", "--standing-charge", "15.65"],
    "hchp": ["--price", "HP=0.2700", "--price", "HC=0.2068", "--standing-charge", "15.37", "--installment", "95"],
    "tempo": ["--price", "HCJB=0.1296", "--price", "HPJB=0.1609", "--price", "HCJW=0.1486", "--price", "HPJW=0.1894",
              "--price", "HCJR=0.1568", "--price", "HPJR=0.7562", "--standing-charge", "15.50"],
    "ejp": ["--price", "normal=0.1950", "--price", "peak=1.4500", "--standing-charge", "15.60"],
}  # fmt: skip


def _run_cli(pipeline: Pipeline, env: dict[str, str], argv: list[str]) -> None:
    done = subprocess.run([sys.executable, "-m", "stream", *argv], env={**pipeline.env, **env},
                          cwd=local_stack.REPO_ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"linky-stream {' '.join(argv[:2])} failed: {done.stderr.strip()[-500:]}")
    _say(done.stdout.strip())


def _wait_registry(pipeline: Pipeline, pdls: list[str], timeout: float = 120.0) -> None:
    """Until the worker's ``/pdl/{pdl}/quarantine`` lists the PDL's gateways."""
    import urllib.request

    url = f"http://127.0.0.1:{Settings.from_env().web_port}/pdl/{{}}/quarantine"
    deadline = time.monotonic() + timeout
    pending = list(pdls)
    while pending and time.monotonic() < deadline:
        pipeline.check_alive()
        try:
            with urllib.request.urlopen(url.format(pending[0]), timeout=5) as r:
                if json.loads(r.read()).get("gateways"):
                    pending.pop(0)
                    continue
        except (OSError, ValueError):
            pass
        time.sleep(0.5)
    if pending:
        raise RuntimeError(f"the worker did not load the gateway registry within {timeout:.0f}s; see .stack/logs/worker.log")


def _set_demo_contracts(pipeline: Pipeline, meters: list[dict], env: dict[str, str] | None = None) -> None:
    """Give every simulated meter the price grid of its option (so the demo prints what today
    costs), and the producers an offer so both offers move: the first producer a 2 kWh virtual
    battery (overflow sold), the next ones "Boost Mon Surplus" (surplus resale)."""
    today = clock.today().isoformat()
    producers = 0
    for m in meters:
        description = m.get("description", "")
        option = next((o for o in DEMO_TARIFFS if o in description.split()), None)
        tariff = [] if option is None else ["--tariff", option, *DEMO_TARIFFS[option]]
        if "producer" not in description.split():
            offer = ["--offer", "none"]
            what = "no battery offer"
        elif producers == 0:
            offer = ["--offer", "virtual_battery", "--capacity-kwh", "2", "--overflow", "sold",
                     "--overflow-rate", "0.04", "--settlement", "realtime", "--fee", "HP=0.0996", "--fee", "HC=0.0996"]
            what = "a 2 kWh virtual battery, overflow sold at 0.04 EUR/kWh"
            producers += 1
        else:
            offer = ["--offer", "surplus_resale", "--rate", "0.1269"]
            what = "surplus resale at 0.1269 EUR/kWh"
        if option is not None:
            what += f", tariff {option}"
        done = subprocess.run([sys.executable, "-m", "stream", "contract", "set", m["pdl"], "--from", today, *offer,
                               *tariff],
                              env={**pipeline.env, **(env or {})}, cwd=local_stack.REPO_ROOT, capture_output=True,
                              text=True)
        if done.returncode == 0:
            _say(f"contract: {m['pdl']} has {what} from {today}")
        else:
            _say(f"contract for {m['pdl']} not set: {done.stderr.strip()[-300:]}")


def _print_help(cfg: local_stack.StackConfig, pdls: list[str]) -> None:
    pdl = pdls[0] if pdls else "<pdl>"
    _say("pipeline running; Ctrl-C stops it (the stack stays up: `make stack-down` stops it)")
    cli = (f"REDISCLI_AUTH=$(cat {cfg.redis_password_file('linky-portal')}) "
           f"redis-cli -p {cfg.redis_port} --user linky-portal")
    _say(f"watch one PDL:   {cli} SUBSCRIBE linky:{pdl}:live linky:{pdl}:conso linky:{pdl}:battery")
    _say(f"latest snapshot: {cli} GET linky:{pdl}:conso")
    web = f"http://127.0.0.1:{Settings.from_env().web_port}"
    _say(f"query:           curl '{web}/pdl/{pdl}/consumption?granularity=hour'")
    _say(f"bill, index:     curl '{web}/pdl/{pdl}/bill' ; curl '{web}/pdl/{pdl}/index?granularity=day&format=csv'")
    _say(f"metrics:         curl {web}/metrics ; curl http://127.0.0.1:{EDGE_METRICS_PORT}/metrics")


def portal_settings(cfg: local_stack.StackConfig) -> dict[str, str]:
    """The portal's environment on the local stack; writes the shared JWT secret on first use."""
    secret = cfg.secrets_dir / "portal-jwt.secret"
    if not secret.exists():
        cfg.secrets_dir.mkdir(parents=True, exist_ok=True)
        secret.touch(mode=0o600)
        secret.write_text(secrets.token_urlsafe(32) + "\n")
    return {
        "LINKY_PORTAL_REDIS_URL": cfg.redis_url, "LINKY_PORTAL_REDIS_USERNAME": "linky-portal",
        "LINKY_PORTAL_REDIS_PASSWORD_FILE": str(cfg.redis_password_file("linky-portal")),
        "LINKY_PORTAL_JWT_SECRET_FILE": str(secret),
        "LINKY_PORTAL_WORKER_URL": f"http://127.0.0.1:{Settings.from_env().web_port}",
    }


def _print_portal_urls(cfg: local_stack.StackConfig, portal_env: dict[str, str], pdls: list[str]) -> None:
    from portal.auth import issue_token

    secret = open(portal_env["LINKY_PORTAL_JWT_SECRET_FILE"]).read().strip().encode()
    settings = Settings.from_env()
    base = (settings.portal_public_url or f"http://{settings.portal_host}:{settings.portal_port}").rstrip("/")
    _say(f"portal:          {base} (metrics on :{settings.portal_metrics_port}); demo tokens valid {DEMO_TOKEN_TTL / 3600:.0f} h, one PDL each:")
    for pdl in pdls:
        token = issue_token(secret, [pdl], DEMO_TOKEN_TTL, sub=f"demo-{pdl[-4:]}")
        print(f"[run] portal for {pdl}: {base}/login?token={token}", file=sys.stderr, flush=True)
    if pdls:
        _say(f"API with a token: curl -H \"Authorization: Bearer $(LINKY_PORTAL_JWT_SECRET_FILE="
             f"{portal_env['LINKY_PORTAL_JWT_SECRET_FILE']} .venv/bin/linky-stream portal token {pdls[0]} "
             f"--token-only)\" {base}/api/pdl/{pdls[0]}/events")


async def _watch_redis(url: str, pipeline: Pipeline, duration: float | None, verbose: bool,
                       pdls: list[str]) -> None:
    """Follow ``linky:*`` on Redis; print a one-line-per-PDL summary every few seconds
    (every message with ``--verbose``)."""
    import redis.asyncio as aioredis

    client = aioredis.from_url(url)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    if pdls:  # simulated meters: only theirs (other users of this Redis may publish too)
        await pubsub.psubscribe(*(f"linky:{pdl}:*" for pdl in pdls))
    else:
        await pubsub.psubscribe("linky:*")
    latest: dict[str, dict[str, dict]] = {}
    deadline = time.monotonic() + duration if duration else None
    next_summary = time.monotonic() + SUMMARY_SECONDS
    try:
        while deadline is None or time.monotonic() < deadline:
            pipeline.check_alive()
            msg = await pubsub.get_message(timeout=0.5)
            if msg is not None:
                channel = msg["channel"].decode()
                if verbose:
                    print(f"{channel} {msg['data'].decode(errors='replace')}", flush=True)
                _, pdl, kind = (channel.split(":", 2) + ["", ""])[:3]
                with contextlib.suppress(ValueError):
                    latest.setdefault(pdl, {})[kind] = json.loads(msg["data"])
            if not verbose and time.monotonic() >= next_summary:
                next_summary = time.monotonic() + SUMMARY_SECONDS
                for pdl, channels in sorted(latest.items()):
                    print(summarise(pdl, channels), flush=True)
    finally:
        await pubsub.aclose()
        await client.aclose()


def summarise(pdl: str, channels: dict[str, dict]) -> str:
    """One line for a PDL from the latest payload of each of its channels."""
    live, conso = channels.get("live", {}), channels.get("conso", {})
    battery, surplus = channels.get("battery", {}), channels.get("surplus", {})
    parts = [f"{pdl:14}", f"{str(live.get('time', '-'))[:19]:19}"]
    parts.append(f"draw {live.get('power_va', '-')!s:>5} VA  inject {live.get('export_power_va') or 0!s:>5} VA")
    day = conso.get("day") or {}
    parts.append(f"today +{day.get('import_wh', '-')} Wh / -{day.get('export_wh', '-')} Wh")
    cost = day.get("cost")
    if cost:
        parts.append(f"today costs {cost['total_eur']} EUR (energy {cost['energy_eur']} + standing {cost['standing_eur']})")
    if battery.get("offer") == "virtual_battery":
        parts.append(f"battery {battery.get('level_wh')} Wh ({battery.get('percent')}%)")
    month = surplus.get("month") or {}
    if surplus.get("offer") not in (None, "none") and month:
        parts.append(f"surplus {month.get('surplus_wh')} Wh, cagnotte {month.get('cagnotte_eur')} EUR")
    alerts = channels.get("alerts", {}).get("open")
    if alerts:
        parts.append("alerts: " + ",".join(sorted(str(a.get("kind")) for a in alerts)))
    return " | ".join(parts)


def _say(msg: str) -> None:
    print(f"[run] {msg}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
