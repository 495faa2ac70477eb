"""``teleinfo`` command line: one sub-command per module in ``teleinfo/commands/``.

Each command module defines ``register(subparsers)`` which adds its parser and sets
``func=run`` where ``run(args) -> int`` returns the exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = ["decode", "read", "publish", "record", "simulate"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="teleinfo", description="Linky TIC (Téléinfo) edge tools")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"teleinfo.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"teleinfo.commands.{name}":
                continue  # command not built yet
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `teleinfo decode x | head`
        sys.stderr.close()
        return 0
