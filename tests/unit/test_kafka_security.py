"""stream/kafka_security.py: LINKY_KAFKA_* settings -> aiokafka keyword arguments / faust credentials."""

from __future__ import annotations

import ssl
from pathlib import Path

import faust
import pytest

from stream.kafka_security import KafkaSecurityError, client_kwargs, describe, faust_credentials
from stream.settings import Settings


def test_plaintext_is_the_default_and_adds_nothing() -> None:
    cfg = Settings.from_env({})
    assert client_kwargs(cfg) == {"security_protocol": "PLAINTEXT"}
    assert faust_credentials(cfg) is None


def test_sasl_ssl_reads_the_password_file_and_verifies_the_broker(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("s3cret\n")
    cfg = Settings.from_env({"LINKY_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "LINKY_KAFKA_USERNAME": "linky-edge",
                             "LINKY_KAFKA_PASSWORD_FILE": str(tmp_path / "pw")})
    kwargs = client_kwargs(cfg)
    assert kwargs["security_protocol"] == "SASL_SSL" and kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (kwargs["sasl_plain_username"], kwargs["sasl_plain_password"]) == ("linky-edge", "s3cret")
    context = kwargs["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    credentials = faust_credentials(cfg)
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.protocol.value == "SASL_SSL" and credentials.mechanism.value == "SCRAM-SHA-512"
    assert "s3cret" not in describe(cfg) and "s3cret" not in repr(credentials)


@pytest.mark.parametrize(("env", "message"), [
    ({"LINKY_KAFKA_SECURITY_PROTOCOL": "TLS"}, "LINKY_KAFKA_SECURITY_PROTOCOL"),
    ({"LINKY_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "LINKY_KAFKA_USERNAME"),
    ({"LINKY_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "LINKY_KAFKA_USERNAME": "u"}, "LINKY_KAFKA_PASSWORD_FILE"),
    ({"LINKY_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "LINKY_KAFKA_USERNAME": "u",
      "LINKY_KAFKA_PASSWORD_FILE": "/nonexistent/pw"}, "LINKY_KAFKA_PASSWORD_FILE=/nonexistent/pw"),
    ({"LINKY_KAFKA_SECURITY_PROTOCOL": "SSL", "LINKY_KAFKA_CA_FILE": "/nonexistent/ca.pem"}, "LINKY_KAFKA_CA_FILE"),
    ({"LINKY_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "LINKY_KAFKA_USERNAME": "u", "LINKY_KAFKA_PASSWORD": "p",
      "LINKY_KAFKA_SASL_MECHANISM": "GSSAPI"}, "LINKY_KAFKA_SASL_MECHANISM"),
])  # fmt: skip
def test_incomplete_settings_name_the_variable_to_fix(env: dict[str, str], message: str) -> None:
    with pytest.raises(KafkaSecurityError, match=message):
        client_kwargs(Settings.from_env(env))
