"""``python -m deploy.monitoring render [--check]``: write (or check) the rules, their promtool
tests and the dashboards under deploy/production/ from deploy/monitoring/*.py."""

from __future__ import annotations

import argparse
import sys

from deploy.monitoring.render import render_all, stale_files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.monitoring")
    parser.add_argument("command", choices=["render"])
    parser.add_argument("--check", action="store_true", help="exit 1 if a rendered file differs from the source")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files()
        for path in stale:
            print(f"stale: {path} (run python -m deploy.monitoring render)", file=sys.stderr)
        return 1 if stale else 0
    for path in render_all():
        print(f"wrote {path}")
    return 0


sys.exit(main())
