"""Authentication of the portal: supplier-issued JWTs (PyJWT) and the portal's own session cookie.

A token is a JWT with ``pdls`` (the PDLs the bearer may see, 14 digits each), ``exp`` (required)
and optionally ``sub`` (the supplier's customer id); ``aud``/``iss`` are checked when configured.
Two modes, never mixed (no algorithm confusion): a shared secret (HS256 only), or the
supplier identity provider's public keys from a JWKS file or URL (RS256/ES256 only).

Time claims are checked here against the product clock (``stream.clock.time()``), not by PyJWT
against the system clock: PyJWT verifies the signature, the algorithm and the required claims.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import jwt
from jwt import PyJWKClient, PyJWKSet

from stream import clock

PDL_RE = re.compile(r"^\d{14}$")
MAX_PDLS = 64
HMAC_ALGORITHMS = ["HS256"]
PUBLIC_KEY_ALGORITHMS = ["RS256", "ES256"]
SESSION_TYPE = "linky-portal-session"
MIN_SECRET_BYTES = 32


class AuthError(Exception):
    """A refused credential; ``reason`` is a metric label, never the token."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Identity:
    """Who the bearer is, for the portal: the PDLs they may see, until when."""

    pdls: tuple[str, ...]
    exp: float
    sub: str | None = None

    def allows(self, pdl: str) -> bool:
        return pdl in self.pdls


def _claims_to_identity(claims: dict[str, Any], leeway: float) -> Identity:
    now = clock.time()
    exp = claims.get("exp")
    if not isinstance(exp, (int, float)) or isinstance(exp, bool):
        raise AuthError("bad_claims")
    if exp <= now - leeway:
        raise AuthError("expired")
    nbf = claims.get("nbf")
    if nbf is not None:
        if not isinstance(nbf, (int, float)) or isinstance(nbf, bool):
            raise AuthError("bad_claims")
        if nbf > now + leeway:
            raise AuthError("not_yet_valid")
    pdls = claims.get("pdls")
    if (not isinstance(pdls, list) or not pdls or len(pdls) > MAX_PDLS
            or not all(isinstance(p, str) and PDL_RE.match(p) for p in pdls)):
        raise AuthError("bad_claims")
    sub = claims.get("sub")
    if sub is not None and not isinstance(sub, str):
        raise AuthError("bad_claims")
    return Identity(tuple(dict.fromkeys(pdls)), float(exp), sub)


_NO_TIME_CHECKS = {"verify_exp": False, "verify_nbf": False, "verify_iat": False, "require": ["exp"]}


def _decode(token: str, key: Any, algorithms: list[str], audience: str | None, issuer: str | None) -> dict[str, Any]:
    options = dict(_NO_TIME_CHECKS, verify_aud=audience is not None)
    try:
        return jwt.decode(token, key, algorithms=algorithms, options=options, audience=audience, issuer=issuer)
    except jwt.InvalidSignatureError:
        raise AuthError("bad_signature") from None
    except jwt.InvalidAlgorithmError:
        raise AuthError("bad_signature") from None
    except (jwt.MissingRequiredClaimError, jwt.InvalidAudienceError, jwt.InvalidIssuerError, jwt.ImmatureSignatureError,
            jwt.exceptions.InvalidSubjectError):
        raise AuthError("bad_claims") from None
    except jwt.DecodeError:
        raise AuthError("malformed") from None
    except jwt.InvalidTokenError:
        raise AuthError("malformed") from None


class Authenticator:
    """Checks supplier tokens (one mode: ``secret`` or ``jwks_file``/``jwks_url``)."""

    def __init__(
        self,
        *,
        secret: bytes | None = None,
        jwks: PyJWKSet | None = None,
        jwks_url: str | None = None,
        audience: str | None = None,
        issuer: str | None = None,
        leeway_seconds: float = 0.0,
    ) -> None:
        modes = [m for m in (secret, jwks, jwks_url) if m]
        if len(modes) != 1:
            raise ValueError("the portal needs exactly one of: a JWT secret, a JWKS file, a JWKS URL")
        if secret is not None and len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"the portal's JWT secret must be at least {MIN_SECRET_BYTES} bytes")
        self.secret = secret
        self.jwks = jwks
        self.jwks_client = PyJWKClient(jwks_url, cache_keys=True, lifespan=300, timeout=5) if jwks_url else None
        self.algorithms = HMAC_ALGORITHMS if secret else PUBLIC_KEY_ALGORITHMS
        self.audience = audience or None
        self.issuer = issuer or None
        self.leeway = leeway_seconds

    @property
    def mode(self) -> str:
        return "shared-secret" if self.secret else ("jwks-url" if self.jwks_client else "jwks-file")

    async def verify(self, token: str) -> Identity:
        """The token's identity, or ``AuthError``."""
        if not token or len(token) > 8192 or token.count(".") != 2:
            raise AuthError("malformed")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise AuthError("malformed") from None
        if header.get("alg") not in self.algorithms:
            raise AuthError("bad_signature")  # "none", or the other mode's algorithms
        key = self.secret if self.secret else await self._public_key(token, header)
        claims = _decode(token, key, self.algorithms, self.audience, self.issuer)
        return _claims_to_identity(claims, self.leeway)

    async def _public_key(self, token: str, header: dict[str, Any]) -> Any:
        kid = header.get("kid")
        if self.jwks_client is not None:
            try:  # urllib under PyJWKClient: keep it off the event loop
                return (await asyncio.to_thread(self.jwks_client.get_signing_key_from_jwt, token)).key
            except jwt.PyJWKClientConnectionError:
                raise AuthError("unknown_key") from None
            except jwt.PyJWKClientError:
                raise AuthError("unknown_key") from None
        assert self.jwks is not None
        keys = [k for k in self.jwks.keys if kid is None or k.key_id == kid]
        if kid is None and len(self.jwks.keys) != 1:
            raise AuthError("unknown_key")
        if not keys:
            raise AuthError("unknown_key")
        return keys[0].key


class SessionSigner:
    """The portal's session cookie: an HS256 JWT of its own (``typ`` = session) carrying the
    supplier token's PDLs, ``sub`` and ``exp``; the supplier token never reaches the cookie."""

    def __init__(self, key: bytes | None = None) -> None:
        self.key = key or secrets.token_bytes(32)

    def issue(self, identity: Identity) -> str:
        claims: dict[str, Any] = {"typ": SESSION_TYPE, "pdls": list(identity.pdls), "exp": int(identity.exp)}
        if identity.sub is not None:
            claims["sub"] = identity.sub
        return jwt.encode(claims, self.key, algorithm="HS256")

    def verify(self, value: str) -> Identity:
        if not value or len(value) > 8192 or value.count(".") != 2:
            raise AuthError("malformed")
        claims = _decode(value, self.key, HMAC_ALGORITHMS, None, None)
        if claims.get("typ") != SESSION_TYPE:
            raise AuthError("bad_claims")
        return _claims_to_identity(claims, 0.0)


def issue_token(secret: bytes, pdls: Iterable[str], ttl_seconds: float, sub: str | None = None,
                audience: str | None = None, issuer: str | None = None) -> str:
    """A supplier-style HS256 token (``linky-stream portal token``, tests, benchmarks);
    ``exp`` is computed from the product clock."""
    claims: dict[str, Any] = {"pdls": list(pdls), "exp": int(clock.time() + ttl_seconds), "iat": int(clock.time())}
    if sub:
        claims["sub"] = sub
    if audience:
        claims["aud"] = audience
    if issuer:
        claims["iss"] = issuer
    return jwt.encode(claims, secret, algorithm="HS256")


def authenticator_from_settings(cfg: Any) -> Authenticator:
    """Build the authenticator from ``LINKY_PORTAL_JWT_*`` / ``LINKY_PORTAL_JWKS_*`` settings."""
    secret = read_secret(cfg)
    jwks = PyJWKSet.from_json(Path(cfg.portal_jwks_file).read_text()) if cfg.portal_jwks_file else None
    return Authenticator(secret=secret, jwks=jwks, jwks_url=cfg.portal_jwks_url or None,
                         audience=cfg.portal_jwt_audience or None, issuer=cfg.portal_jwt_issuer or None,
                         leeway_seconds=cfg.portal_jwt_leeway_seconds)


def read_secret(cfg: Any) -> bytes | None:
    """The HS256 secret from ``LINKY_PORTAL_JWT_SECRET_FILE`` or ``LINKY_PORTAL_JWT_SECRET``."""
    if cfg.portal_jwt_secret_file:
        return Path(cfg.portal_jwt_secret_file).read_text().strip().encode()
    if cfg.portal_jwt_secret:
        return cfg.portal_jwt_secret.encode()
    return None


def session_signer_from_settings(cfg: Any) -> SessionSigner:
    if cfg.portal_session_secret_file:
        return SessionSigner(Path(cfg.portal_session_secret_file).read_text().strip().encode())
    return SessionSigner()


def jwks_document(*public_jwks: dict[str, Any]) -> str:
    """``{"keys": [...]}`` (tests and docs)."""
    return json.dumps({"keys": list(public_jwks)})
