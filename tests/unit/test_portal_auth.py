"""portal/auth.py: supplier tokens (HS256, JWKS with RS256/ES256 keys made here), the session
cookie, and the expiry checks on the product clock."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import jwt
import pytest
from jwt import PyJWKSet

from portal.auth import AuthError, Authenticator, Identity, SessionSigner, issue_token
from stream import clock
from tests.portal_support import PDL_A, PDL_B, SECRET, KeyPair, hs_token, jwks, resigned_claims, tampered, unsigned

AT = datetime(2031, 3, 4, 10, 0, tzinfo=timezone.utc)


@pytest.fixture
def hs() -> Authenticator:
    return Authenticator(secret=SECRET)


async def reason(auth: Authenticator, token: str) -> str:
    with pytest.raises(AuthError) as caught:
        await auth.verify(token)
    return caught.value.reason


async def test_a_valid_hs256_token_gives_its_pdls_and_sub(hs: Authenticator) -> None:
    identity = await hs.verify(hs_token([PDL_A, PDL_B], sub="cust-42"))
    assert identity.pdls == (PDL_A, PDL_B) and identity.sub == "cust-42"
    assert identity.allows(PDL_A) and identity.allows(PDL_B) and not identity.allows("33333333333333")


async def test_refusals_and_their_reasons(hs: Authenticator) -> None:
    good = hs_token([PDL_A])
    assert await reason(hs, "") == "malformed"
    assert await reason(hs, "not-a-jwt") == "malformed"
    assert await reason(hs, "a.b.c") == "malformed"
    assert await reason(hs, tampered(good)) == "bad_signature"
    assert await reason(hs, resigned_claims(good, pdls=[PDL_A, PDL_B])) == "bad_signature"
    assert await reason(hs, hs_token([PDL_A], secret=b"another-secret-that-is-long-enough-!!")) == "bad_signature"
    assert await reason(hs, unsigned([PDL_A])) == "bad_signature"  # alg none
    assert await reason(hs, hs_token([PDL_A], ttl=-1)) == "expired"
    no_exp = jwt.encode({"pdls": [PDL_A]}, SECRET, algorithm="HS256")
    assert await reason(hs, no_exp) == "bad_claims"
    for pdls in ([], ["123"], [12345678901234], "11111111111111", None):
        assert await reason(hs, hs_token(pdls)) == "bad_claims"  # type: ignore[arg-type]
    assert await reason(hs, hs_token([PDL_A], nbf=int(clock.time()) + 300)) == "not_yet_valid"
    assert await reason(hs, hs_token([PDL_A], sub=42)) == "bad_claims"


async def test_expiry_follows_the_product_clock(hs: Authenticator) -> None:
    with clock.pinned(AT):
        token = hs_token([PDL_A], ttl=3600)  # exp = AT + 1 h, whatever day the test runs
        assert (await hs.verify(token)).exp == AT.timestamp() + 3600
    with clock.pinned(AT + timedelta(minutes=59)):
        assert (await hs.verify(token)).pdls == (PDL_A,)
    with clock.pinned(AT + timedelta(hours=1)):
        assert await reason(hs, token) == "expired"
    leeway = Authenticator(secret=SECRET, leeway_seconds=30)
    with clock.pinned(AT + timedelta(hours=1, seconds=20)):
        assert (await leeway.verify(token)).pdls == (PDL_A,)


async def test_audience_and_issuer_when_configured() -> None:
    auth = Authenticator(secret=SECRET, audience="linky-portal", issuer="https://supplier.example")
    ok = hs_token([PDL_A], aud="linky-portal", iss="https://supplier.example")
    assert (await auth.verify(ok)).pdls == (PDL_A,)
    assert await reason(auth, hs_token([PDL_A], aud="other", iss="https://supplier.example")) == "bad_claims"
    assert await reason(auth, hs_token([PDL_A], aud="linky-portal")) == "bad_claims"


async def test_jwks_mode_with_rsa_and_ec_keys_made_here() -> None:
    rsa_key, ec_key, stranger = KeyPair("RS256", "rsa-1"), KeyPair("ES256", "ec-1"), KeyPair("RS256", "rsa-1")
    auth = Authenticator(jwks=PyJWKSet.from_json(jwks(rsa_key, ec_key)))
    assert auth.mode == "jwks-file"
    assert (await auth.verify(rsa_key.token([PDL_A]))).pdls == (PDL_A,)
    assert (await auth.verify(ec_key.token([PDL_B], sub="c"))).sub == "c"
    assert await reason(auth, stranger.token([PDL_A])) == "bad_signature"  # same kid, other key
    assert await reason(auth, rsa_key.token([PDL_A], kid="unknown")) == "unknown_key"
    assert await reason(auth, rsa_key.token([PDL_A], kid=None)) == "unknown_key"  # two keys, no kid
    assert await reason(auth, rsa_key.token([PDL_A], ttl=-5)) == "expired"
    assert await reason(auth, tampered(ec_key.token([PDL_A]))) == "bad_signature"
    # algorithm confusion: an HS256 token "signed" with the public key is refused outright
    assert await reason(auth, hs_token([PDL_A])) == "bad_signature"
    assert await reason(Authenticator(secret=SECRET), rsa_key.token([PDL_A])) == "bad_signature"


def test_one_mode_and_a_long_enough_secret() -> None:
    with pytest.raises(ValueError):
        Authenticator()
    with pytest.raises(ValueError):
        Authenticator(secret=b"short")
    with pytest.raises(ValueError):
        Authenticator(secret=SECRET, jwks_url="https://idp.example/jwks.json")


def test_session_cookie_round_trip_and_tampering() -> None:
    signer = SessionSigner()
    identity = Identity((PDL_A, PDL_B), clock.time() + 60, "cust")
    value = signer.issue(identity)
    assert signer.verify(value) == Identity((PDL_A, PDL_B), float(int(identity.exp)), "cust")
    for bad in (tampered(value), resigned_claims(value, pdls=[PDL_A, "33333333333333"]), "x", ""):
        with pytest.raises(AuthError):
            signer.verify(bad)
    with pytest.raises(AuthError):  # another process's key
        SessionSigner().verify(value)
    with pytest.raises(AuthError) as caught:  # a supplier token is not a session
        SessionSigner(SECRET).verify(hs_token([PDL_A]))
    assert caught.value.reason == "bad_claims"
    with clock.pinned(datetime.fromtimestamp(identity.exp + 1, timezone.utc)):
        with pytest.raises(AuthError) as caught:
            signer.verify(value)
        assert caught.value.reason == "expired"


def test_issue_token_computes_exp_from_the_clock() -> None:
    with clock.pinned(AT):
        token = issue_token(SECRET, [PDL_A], 900, sub="s")
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], options={"verify_exp": False, "verify_iat": False})
    assert claims == {"pdls": [PDL_A], "exp": int(AT.timestamp()) + 900, "iat": int(AT.timestamp()), "sub": "s"}


async def test_jwks_url_mode_fetches_the_keys_off_the_event_loop() -> None:
    import http.server
    import threading

    key = KeyPair("ES256", "ec-url")
    body = jwks(key).encode()
    fetched: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            fetched.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        auth = Authenticator(jwks_url=f"http://127.0.0.1:{server.server_port}/jwks.json")
        assert auth.mode == "jwks-url"
        assert (await auth.verify(key.token([PDL_A]))).pdls == (PDL_A,)
        assert (await auth.verify(key.token([PDL_B]))).pdls == (PDL_B,)
        assert fetched == ["/jwks.json"]  # cached
        assert await reason(auth, KeyPair("ES256", "ec-url").token([PDL_A])) == "bad_signature"
        assert await reason(auth, hs_token([PDL_A])) == "bad_signature"
    finally:
        server.shutdown()
        server.server_close()
