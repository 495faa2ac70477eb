"""Kafka client security from the ``LINKY_KAFKA_*`` settings (docs/security.md, docs/configuration.md).

One place turns ``Settings`` into what aiokafka wants (``client_kwargs``: ``security_protocol``,
``ssl_context``, ``sasl_mechanism``, ``sasl_plain_username``/``password``) and what faust wants
(``faust_credentials``: ``faust.SASLCredentials`` or ``SSLCredentials``, faust hands them to every
aiokafka client it makes). The edge publisher, the worker and the operators' CLIs all use it.

The password comes from ``LINKY_KAFKA_PASSWORD_FILE`` (preferred) or ``LINKY_KAFKA_PASSWORD``.
An incomplete configuration (SASL without a user, an unreadable CA or password file) raises
``KafkaSecurityError`` with the variable to fix, at start, never a silent plaintext fallback.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

from stream.settings import Settings

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")


class KafkaSecurityError(ValueError):
    """The Kafka security settings are incomplete or unreadable (the message names the variable)."""


def password(cfg: Settings) -> str:
    """The SASL password: the file's first line if ``kafka_password_file`` is set, else the value."""
    if cfg.kafka_password_file:
        try:
            return Path(cfg.kafka_password_file).read_text().strip()
        except OSError as exc:
            raise KafkaSecurityError(f"LINKY_KAFKA_PASSWORD_FILE={cfg.kafka_password_file}: {exc.strerror}") from None
    return cfg.kafka_password


def ssl_context(cfg: Settings) -> ssl.SSLContext:
    """A client context verifying the broker's certificate and host name (TLS 1.2+)."""
    try:
        context = ssl.create_default_context(cafile=cfg.kafka_ca_file or None)
    except (OSError, ssl.SSLError) as exc:
        raise KafkaSecurityError(f"LINKY_KAFKA_CA_FILE={cfg.kafka_ca_file}: {exc}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _check(cfg: Settings) -> str:
    protocol = cfg.kafka_security_protocol.upper()
    if protocol not in PROTOCOLS:
        raise KafkaSecurityError(f"LINKY_KAFKA_SECURITY_PROTOCOL={cfg.kafka_security_protocol!r}: one of {', '.join(PROTOCOLS)}")
    if protocol.startswith("SASL"):
        if cfg.kafka_sasl_mechanism not in MECHANISMS:
            raise KafkaSecurityError(f"LINKY_KAFKA_SASL_MECHANISM={cfg.kafka_sasl_mechanism!r}: one of {', '.join(MECHANISMS)}")
        if not cfg.kafka_username:
            raise KafkaSecurityError(f"LINKY_KAFKA_USERNAME is required with LINKY_KAFKA_SECURITY_PROTOCOL={protocol}")
        if not password(cfg):
            raise KafkaSecurityError("LINKY_KAFKA_PASSWORD_FILE (or LINKY_KAFKA_PASSWORD) is required with SASL")
    return protocol


def client_kwargs(cfg: Settings) -> dict[str, Any]:
    """Keyword arguments for ``AIOKafkaProducer``/``AIOKafkaConsumer``/``AIOKafkaAdminClient``."""
    protocol = _check(cfg)
    kwargs: dict[str, Any] = {"security_protocol": protocol}
    if protocol in ("SSL", "SASL_SSL"):
        kwargs["ssl_context"] = ssl_context(cfg)
    if protocol.startswith("SASL"):
        kwargs.update(sasl_mechanism=cfg.kafka_sasl_mechanism, sasl_plain_username=cfg.kafka_username,
                      sasl_plain_password=password(cfg))
    return kwargs


def faust_credentials(cfg: Settings) -> Any:
    """``broker_credentials`` for ``faust.App`` (None for PLAINTEXT)."""
    import faust

    protocol = _check(cfg)
    if protocol == "PLAINTEXT":
        return None
    if protocol == "SSL":
        return faust.SSLCredentials(ssl_context(cfg))
    credentials = faust.SASLCredentials(
        username=cfg.kafka_username, password=password(cfg), mechanism=cfg.kafka_sasl_mechanism,
        ssl_context=ssl_context(cfg) if protocol == "SASL_SSL" else None,
    )
    return credentials


def describe(cfg: Settings) -> str:
    """For logs: protocol and user, never the password."""
    protocol = cfg.kafka_security_protocol.upper()
    return protocol if not protocol.startswith("SASL") else f"{protocol} as {cfg.kafka_username or '?'}"
