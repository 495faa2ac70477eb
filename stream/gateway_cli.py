"""``linky-stream gateway add|rotate|revoke|show``: provision the gateways allowed to sign readings.

    linky-stream gateway add gw-maison-1 --pdl 12345678901234 [--pdl ...] --key-file gw-maison-1.key
    linky-stream gateway rotate gw-maison-1 --key-file gw-maison-1.key [--window-hours 168]
    linky-stream gateway revoke gw-maison-1
    linky-stream gateway show [gw-maison-1] [--json]

``add`` generates a key (32 random bytes, key id ``k<UTC time>``), writes the key file the edge is
given (``LINKY_EDGE_GATEWAY_KEY_FILE``; mode 0600; JSON gateway_id, key_id, secret) and publishes
the registry documents of the PDLs. ``rotate`` adds a new key to every PDL of the gateway and
overwrites the key file; the older keys keep verifying readings dated before ``now + window``
(default 7 days) so nothing is lost while the new file reaches the edge. ``revoke`` refuses
everything the gateway signs from now on (its PDLs then take no unsigned reading either).
``show`` prints gateways, PDLs, key ids and dates, never secrets.

Kafka and topic come from the ``LINKY_*`` settings (``LINKY_KAFKA_*`` security included: the admin
user reads and writes the topic). Exit status: 0 done, 1 Kafka error, 2 invalid input.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any, Sequence

from stream import clock
from stream.gateways import ensure_gateways_topic, read_all, update_registries
from stream.kafka_security import KafkaSecurityError
from stream.settings import Settings
from tables.trust import (
    KeyFile,
    PdlGateways,
    TrustError,
    add_gateway,
    check_gateway_id,
    new_secret,
    public_view,
    revoke_gateway,
    rotate_gateway,
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="linky-stream gateway", description=__doc__.split("\n\n")[0])
    p.add_argument("--bootstrap", help="Kafka bootstrap servers (LINKY_KAFKA_BOOTSTRAP)")
    p.add_argument("--topic", help="gateways topic (LINKY_GATEWAYS_TOPIC)")
    sub = p.add_subparsers(dest="command", required=True)
    add = sub.add_parser("add", help="provision a gateway for PDLs and write its key file")
    add.add_argument("gateway")
    add.add_argument("--pdl", action="append", required=True, help="a PDL this gateway reads (repeat)")
    add.add_argument("--key-file", required=True, type=Path, help="where to write the edge's key file")
    rot = sub.add_parser("rotate", help="new key for a gateway; the old ones stay valid for a window")
    rot.add_argument("gateway")
    rot.add_argument("--key-file", required=True, type=Path)
    rot.add_argument("--window-hours", type=float, default=168.0)
    rev = sub.add_parser("revoke", help="refuse everything the gateway signs from now on")
    rev.add_argument("gateway")
    show = sub.add_parser("show", help="gateways, their PDLs and key ids (no secrets)")
    show.add_argument("gateway", nargs="?")
    show.add_argument("--json", action="store_true")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``linky-stream gateway ...``; returns the exit status."""
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    cfg = Settings.from_env(kafka_bootstrap=args.bootstrap, gateways_topic=args.topic)
    try:
        check_gateway_id(args.gateway) if args.gateway else None
        return asyncio.run(_run(cfg, args))
    except TrustError as exc:
        print(f"linky-stream gateway: {exc}", file=sys.stderr)
        return 2
    except (KafkaSecurityError, OSError) as exc:
        print(f"linky-stream gateway: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # aiokafka errors have no common base we can name
        if type(exc).__module__.startswith("aiokafka") or type(exc).__module__.startswith("stream.contracts"):
            print(f"linky-stream gateway: Kafka error: {exc!r}", file=sys.stderr)
            return 1
        raise


async def _run(cfg: Settings, args: argparse.Namespace) -> int:
    now = clock.now()
    if args.command == "add":
        key = KeyFile(args.gateway, _key_id(now), new_secret())
        await update_registries(cfg, list(dict.fromkeys(args.pdl)),
                                lambda doc: add_gateway(doc, key.gateway_id, key.key_id, key.secret, now))
        write_key_file(args.key_file, key)
        print(f"gateway {key.gateway_id}: key {key.key_id} for {', '.join(args.pdl)} written to "
              f"{cfg.gateways_topic}; key file {args.key_file} (give it to the edge: LINKY_EDGE_GATEWAY_KEY_FILE)")
        return 0
    await ensure_gateways_topic(cfg)
    docs = await read_all(cfg)
    if args.command == "show":
        view = gateway_view(docs, args.gateway)
        if args.gateway and not view:
            print(f"gateway {args.gateway}: not provisioned on {cfg.gateways_topic}", file=sys.stderr)
            return 2
        print(json.dumps(view, indent=2) if args.json else render(view))
        return 0
    pdls = sorted(pdl for pdl, doc in docs.items() if args.gateway in doc.gateways)
    if not pdls:
        raise TrustError(f"gateway {args.gateway} is not provisioned for any PDL")
    if args.command == "revoke":
        await update_registries(cfg, pdls, lambda doc: revoke_gateway(doc, args.gateway, now))
        print(f"gateway {args.gateway}: revoked for {', '.join(pdls)}")
        return 0
    key = KeyFile(args.gateway, _key_id(now), new_secret())
    window = timedelta(hours=args.window_hours)
    await update_registries(cfg, pdls, lambda doc: rotate_gateway(doc, args.gateway, key.key_id, key.secret, now, window))
    write_key_file(args.key_file, key)
    print(f"gateway {args.gateway}: new key {key.key_id} for {', '.join(pdls)}; older keys valid until "
          f"{(now + window).isoformat(timespec='seconds')}; key file {args.key_file}")
    return 0


def _key_id(now: Any) -> str:
    return "k" + now.strftime("%Y%m%dT%H%M%S%fZ")


def write_key_file(path: Path, key: KeyFile) -> None:
    """Write atomically, mode 0600 (the secret never goes to stdout or logs)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(key.to_json())
    os.replace(tmp, path)


def gateway_view(docs: dict[str, PdlGateways], gateway: str | None) -> dict[str, Any]:
    """``{gateway_id: {"pdls": {pdl: {revoked_at, keys: {key_id: {created_at, expires_at}}}}}}``."""
    out: dict[str, Any] = {}
    for pdl, doc in sorted(docs.items()):
        for gid, g in public_view(doc)["gateways"].items():
            if gateway is None or gid == gateway:
                out.setdefault(gid, {"pdls": {}})["pdls"][pdl] = g
    return out


def render(view: dict[str, Any]) -> str:
    lines = []
    for gid, g in sorted(view.items()):
        lines.append(gid)
        for pdl, entry in g["pdls"].items():
            state = f"revoked {entry['revoked_at']}" if entry["revoked_at"] else "active"
            keys = ", ".join(f"{kid}" + (f" (until {k['expires_at']})" if k["expires_at"] else "")
                             for kid, k in entry["keys"].items())
            lines.append(f"  {pdl}: {state}; keys {keys}")
    return "\n".join(lines) or "no gateways"
