"""Token helpers of the portal tests: HS256 tokens, key pairs made in the test (RSA and EC),
their JWKS, tokens signed with them. Every ``exp`` is computed from the product clock."""

from __future__ import annotations

import json
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from stream import clock

SECRET = b"a-test-secret-that-is-long-enough-for-hs256!"
PDL_A, PDL_B, PDL_C = "11111111111111", "22222222222222", "33333333333333"


def hs_token(pdls: list[str], ttl: float = 600.0, secret: bytes = SECRET, **claims: Any) -> str:
    body: dict[str, Any] = {"pdls": pdls, "exp": int(clock.time() + ttl), **claims}
    return jwt.encode({k: v for k, v in body.items() if v is not None}, secret, algorithm="HS256")


class KeyPair:
    """A signing key made in the test, its public JWK (with ``kid``), tokens signed with it."""

    def __init__(self, kind: str, kid: str) -> None:
        self.kid = kid
        if kind == "RS256":
            self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            jwk = json.loads(RSAAlgorithm.to_jwk(self.private.public_key()))
        else:
            self.private = ec.generate_private_key(ec.SECP256R1())
            jwk = json.loads(ECAlgorithm.to_jwk(self.private.public_key()))
        self.alg = kind
        self.jwk = {**jwk, "kid": kid, "alg": kind, "use": "sig"}

    def token(self, pdls: list[str], ttl: float = 600.0, kid: str | None = "", **claims: Any) -> str:
        headers = {"kid": self.kid if kid == "" else kid} if kid is not None else {}
        body = {"pdls": pdls, "exp": int(clock.time() + ttl), **claims}
        return jwt.encode(body, self.private, algorithm=self.alg, headers=headers)


def jwks(*pairs: KeyPair) -> str:
    return json.dumps({"keys": [p.jwk for p in pairs]})


def tampered(token: str) -> str:
    """The same header and claims with one signature character changed."""
    head, body, sig = token.split(".")
    flipped = ("A" if sig[5] != "A" else "B")
    return f"{head}.{body}.{sig[:5]}{flipped}{sig[6:]}"


def resigned_claims(token: str, **changes: Any) -> str:
    """Claims changed (e.g. another PDL added) but the original signature kept: a forgery."""
    import base64

    head, body, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims.update(changes)
    new = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{head}.{new}.{sig}"


def unsigned(pdls: list[str]) -> str:
    """``alg: none``."""
    return jwt.encode({"pdls": pdls, "exp": int(clock.time() + 600)}, None, algorithm="none")
