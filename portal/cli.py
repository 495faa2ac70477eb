"""``linky-stream portal`` (run the portal) and ``linky-stream portal token PDL... [--ttl 1h]``
(issue a shared-secret token and print the URL a person opens)."""

from __future__ import annotations

import argparse
import asyncio
import re
import sys

from portal.auth import PDL_RE, issue_token, read_secret
from stream.settings import Settings

TTL_RE = re.compile(r"^(\d+(?:\.\d+)?)([smhd]?)$")
UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_ttl(text: str) -> float:
    """``90``, ``90s``, ``15m``, ``1h``, ``7d`` -> seconds."""
    match = TTL_RE.match(text.strip())
    if not match or float(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"--ttl {text!r}: use e.g. 900, 15m, 1h, 7d")
    return float(match.group(1)) * UNITS[match.group(2)]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "token":
        return token_main(argv[1:])
    parser = argparse.ArgumentParser(prog="linky-stream portal", description="run the customer portal (docs/portal.md)")
    parser.add_argument("command", nargs="?", choices=["serve"], default="serve")
    parser.parse_args(argv)
    from teleinfo.logs import configure_logging
    from portal.server import serve

    cfg = Settings.from_env()
    configure_logging(cfg.log_format, cfg.log_level)
    try:
        asyncio.run(serve(cfg))
    except (OSError, ValueError) as exc:  # unreadable secret file, bad settings, port taken
        print(f"linky-stream portal: {exc}", file=sys.stderr)
        return 1
    return 0


def token_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="linky-stream portal token",
                                     description="issue a portal token (shared-secret mode) and print its login URL")
    parser.add_argument("pdls", nargs="+", metavar="PDL")
    parser.add_argument("--ttl", type=parse_ttl, default=3600.0, help="lifetime (900, 15m, 1h, 7d; default 1h)")
    parser.add_argument("--sub", help="the supplier's customer id (claim sub)")
    parser.add_argument("--token-only", action="store_true", help="print the token alone")
    args = parser.parse_args(argv)
    bad = [p for p in args.pdls if not PDL_RE.match(p)]
    if bad:
        parser.error(f"not a PDL (14 digits): {' '.join(bad)}")
    cfg = Settings.from_env()
    try:
        secret = read_secret(cfg)
    except OSError as exc:
        print(f"linky-stream portal token: {exc}", file=sys.stderr)
        return 1
    if secret is None:
        print("linky-stream portal token: set LINKY_PORTAL_JWT_SECRET_FILE (or LINKY_PORTAL_JWT_SECRET); "
              "with a JWKS the supplier's identity provider issues the tokens", file=sys.stderr)
        return 2
    from portal.server import public_url

    token = issue_token(secret, args.pdls, args.ttl, sub=args.sub, audience=cfg.portal_jwt_audience or None,
                        issuer=cfg.portal_jwt_issuer or None)
    print(token if args.token_only else f"{public_url(cfg)}/login?token={token}")
    return 0
