"""``linky-stream portal token``: a shared-secret token for the given PDLs, exp from the product
clock, printed inside the login URL."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import jwt
import pytest

from portal.auth import Authenticator
from portal.cli import parse_ttl
from stream import clock
from stream.cli import main
from tests.portal_support import PDL_A, PDL_B, SECRET

AT = datetime(2032, 2, 3, 4, 5, tzinfo=timezone.utc)


@pytest.fixture
def secret_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("LINKY_PORTAL_JWT_SECRET", "LINKY_PORTAL_JWT_AUDIENCE", "LINKY_PORTAL_JWT_ISSUER",
                "LINKY_PORTAL_HOST", "LINKY_PORTAL_PORT"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "s").write_text(SECRET.decode() + "\n")
    monkeypatch.setenv("LINKY_PORTAL_JWT_SECRET_FILE", str(tmp_path / "s"))
    monkeypatch.setenv("LINKY_PORTAL_PUBLIC_URL", "https://portail.example/")


async def test_token_command_prints_a_login_url(secret_env: None, capsys: pytest.CaptureFixture[str]) -> None:
    with clock.pinned(AT):
        assert main(["portal", "token", PDL_A, PDL_B, "--ttl", "2h", "--sub", "cust-9"]) == 0
        url = urlparse(capsys.readouterr().out.strip())
        assert (url.scheme, url.netloc, url.path) == ("https", "portail.example", "/login")
        token = parse_qs(url.query)["token"][0]
        identity = await Authenticator(secret=SECRET).verify(token)
    assert identity.pdls == (PDL_A, PDL_B) and identity.sub == "cust-9"
    assert identity.exp == AT.timestamp() + 7200
    assert jwt.get_unverified_header(token)["alg"] == "HS256"


def test_token_command_refuses_bad_input(secret_env: None, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["portal", "token", "123"])
    with pytest.raises(SystemExit):
        main(["portal", "token", PDL_A, "--ttl", "soon"])
    monkeypatch.delenv("LINKY_PORTAL_JWT_SECRET_FILE")
    assert main(["portal", "token", PDL_A]) == 2
    assert "LINKY_PORTAL_JWT_SECRET_FILE" in capsys.readouterr().err


def test_parse_ttl() -> None:
    assert [parse_ttl(t) for t in ("90", "90s", "15m", "1h", "7d", "0.5h")] == [90, 90, 900, 3600, 604800, 1800]
