"""``linky-stream`` console script: the stream worker and operator commands."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help"}:
        print("usage: linky-stream worker [faust worker options]   run a stream worker (faust -A stream.app worker)\n"
              "       linky-stream contract set|show|anchor PDL ...  customer contracts (docs/battery.md)\n"
              "       linky-stream gateway add|rotate|revoke|show ... gateways allowed to sign readings (docs/security.md)\n"
              "       linky-stream portal                          run the customer portal (docs/portal.md)\n"
              "       linky-stream portal token PDL... [--ttl 1h]  issue a demo token, print its login URL\n"
              "       linky-stream status [--worker URL] [--json]     partitions, lag, recovery, Redis (docs/operations.md)\n"
              "       linky-stream migrate-state [--check]          tables before the one-state design -> pdl-state (docs/stream.md)\n"
              "       linky-stream probe URL [--wait S]               exit 0 when URL answers 200 (/healthz, /readyz)")
        return 0
    if argv[0] == "worker":
        from stream.app import app

        sys.argv = ["linky-stream", "worker", *argv[1:]]
        app.main()
        return 0
    if argv[0] == "contract":  # contract set|show|anchor PDL ... (stream/contract_cli.py)
        return __import__("stream.contract_cli", fromlist=["main"]).main(argv[1:])
    if argv[0] == "gateway":  # gateway add|rotate|revoke|show (stream/gateway_cli.py)
        return __import__("stream.gateway_cli", fromlist=["main"]).main(argv[1:])
    if argv[0] == "portal":  # portal [serve] | portal token PDL... (portal/cli.py)
        return __import__("portal.cli", fromlist=["main"]).main(argv[1:])
    if argv[0] == "migrate-state":  # stream/migrate.py
        return __import__("stream.migrate", fromlist=["main"]).main(argv[1:])
    if argv[0] == "probe":  # stream/probe.py
        return __import__("stream.probe", fromlist=["main"]).main(argv[1:])
    if argv[0] == "status":  # stream/status_cli.py
        return __import__("stream.status_cli", fromlist=["main"]).main(argv[1:])
    print(f"linky-stream: unknown command {argv[0]!r}", file=sys.stderr)
    return 2
