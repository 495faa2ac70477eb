"""teleinfo/publisher.py GatewaySigner: the edge signs with its key file and follows a rotation."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tables.trust import HEADER_GATEWAY, HEADER_KEY_ID, HEADER_SIGNATURE, KeyFile, TrustError, signature
from teleinfo.publisher import GatewaySigner

VALUE = b'{"pdl":"12345678901234","time":"2026-03-01T12:00:00+01:00"}'


def write(path: Path, key: KeyFile, mtime: int) -> None:
    path.write_text(key.to_json())
    os.utime(path, (mtime, mtime))


def test_signs_each_value_and_follows_a_rewritten_key_file(tmp_path: Path) -> None:
    path = tmp_path / "gw.key"
    k1, k2 = KeyFile("gw1", "k1", b"a" * 32), KeyFile("gw1", "k2", b"b" * 32)
    write(path, k1, 1_000_000)
    signer = GatewaySigner(path)
    headers = dict(signer.headers(VALUE))
    assert headers[HEADER_GATEWAY] == b"gw1" and headers[HEADER_KEY_ID] == b"k1"
    assert headers[HEADER_SIGNATURE] == signature(k1.secret, "gw1", "k1", VALUE).encode()
    write(path, k2, 2_000_000)  # `linky-stream gateway rotate --key-file` rewrote it
    signer.refresh()
    assert dict(signer.headers(VALUE))[HEADER_KEY_ID] == b"k2"
    path.write_text("garbage")  # a broken file: the last good key is kept
    os.utime(path, (3_000_000, 3_000_000))
    signer.refresh()
    assert dict(signer.headers(VALUE))[HEADER_KEY_ID] == b"k2"


def test_an_invalid_key_file_is_refused_at_start(tmp_path: Path) -> None:
    (tmp_path / "bad.key").write_text("{}")
    with pytest.raises(TrustError):
        GatewaySigner(tmp_path / "bad.key")
    with pytest.raises(OSError):
        GatewaySigner(tmp_path / "missing.key")
