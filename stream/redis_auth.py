"""Redis credentials of a client (Redis ACL users, docs/deployment.md "Privacy").

A URL may carry ``user:password@``; otherwise a username and a password (read from a file, or
given directly) are passed to redis-py. The local stack writes one password file per user under
``.stack/secrets/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def credentials(username: str = "", password_file: str = "", password: str = "") -> dict[str, Any]:
    """Keyword arguments for ``redis.asyncio.Redis.from_url`` (empty when nothing is configured).

    The password file wins over ``password``; a missing or unreadable file raises ``OSError``
    at start-up, not at the first publish."""
    out: dict[str, Any] = {}
    if password_file:
        password = Path(password_file).read_text().strip()
    if username:
        out["username"] = username
    if password:
        out["password"] = password
    return out
