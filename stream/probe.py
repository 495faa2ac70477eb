"""``linky-stream probe URL [--timeout S] [--wait]``: exit 0 when ``URL`` answers 200 (for
systemd: ``ExecStartPost`` waits for ``/healthz``, the health-check timer probes it; load
balancers use ``/readyz``). Prints the JSON body (what is not ready) on failure. No Faust import."""

from __future__ import annotations

import argparse
import sys
import time
import urllib.error
import urllib.request


def probe(url: str, timeout: float) -> tuple[bool, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status == 200, r.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return False, exc.read().decode(errors="replace")
    except OSError as exc:
        return False, str(exc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="linky-stream probe")
    parser.add_argument("url")
    parser.add_argument("--timeout", type=float, default=5.0, help="per request")
    parser.add_argument("--wait", type=float, default=0.0, help="keep trying for this many seconds")
    args = parser.parse_args(argv)
    deadline = time.monotonic() + args.wait
    while True:
        ok, body = probe(args.url, args.timeout)
        if ok or time.monotonic() >= deadline:
            break
        time.sleep(1.0)
    if not ok:
        print(f"{args.url}: {body}", file=sys.stderr)
    return 0 if ok else 1
