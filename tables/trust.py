"""Edge trust, pure rules (docs/security.md): gateway registry documents, reading signatures,
replay and plausibility checks, and the small per-PDL trust state they need. No Kafka, no Faust.

**Gateways.** A gateway (the edge box in a home, ``gateway_id``) holds one or more HMAC-SHA256
keys (``key_id`` -> 32 random bytes). The registry is one document per PDL (the compacted topic
``linky.gateways``, keyed by PDL like the contracts, so the worker finds it in the partition of
the PDL's readings): which gateways may sign readings of that PDL, their keys, revocation::

    {"pdl": "12345678901234", "gateways": {"gw-maison-1": {
        "created_at": "2026-03-01T10:00:00+00:00", "revoked_at": null,
        "keys": {"k1": {"secret": "<base64url>", "created_at": "...", "expires_at": null}}}}}

**Signature.** The edge signs each record: ``HMAC-SHA256(secret, "linky-reading-v1\\n" +
gateway_id + "\\n" + key_id + "\\n" + value)`` over the exact value bytes it sends (the reading's
JSON, which carries the PDL and the time), hex in header ``linky-sig``; ``linky-gateway`` and
``linky-key-id`` headers name the gateway and key. ``verify_headers`` checks, in order: gateway
provisioned for the PDL (``gateway_not_provisioned``), not revoked (``gateway_revoked``), key
known (``key_unknown``) and not expired (``key_expired``: after a rotation window), signature
(``bad_signature``, constant-time compare), the value's PDL equals the record key
(``pdl_mismatch``). Unsigned records: ``unsigned`` (refused) unless the roll-out setting accepts
them *and* no gateway is provisioned for the PDL (a bound PDL never takes unsigned readings, else
stripping the headers would defeat the binding).

**Replay.** Duplicates are already no-ops in the folds (a reading not newer than the fold's cursor
changes nothing). A *replayed old reading* is a new record (Kafka offset above the last accepted
one of the PDL) dated more than ``replay_window`` before the newest accepted reading of the PDL:
``replay``. Within the window an older record is a re-send of the edge spool (duplicates after a
crash) and goes on to the folds, which ignore it; a record at or below the last accepted offset
is the worker re-reading its own log (stream/consumer.py) and is not a replay.

**Plausibility**, against the PDL's last plausible reading (the *baseline*), for every signed
reading (unsigned ones accepted during the roll-out are folded as before, unless
``LINKY_TRUST_CHECK_UNSIGNED``; in production no unsigned reading is accepted at all):

- ``future_reading``: dated more than ``max_future`` after now (stream/clock.py);
- ``impossible_growth``: an index (total import ``import_wh`` or export ``export_wh``) grew by
  more than ``subscribed_kva x 1000 x elapsed hours x (1 + tolerance) + slack_wh``: no meter
  behind a breaker of that size can register it;
- ``injection_on_consumer``: the export index grew while the meter's STGE says consumer
  (``status.producer`` false) and the PDL has no producer contract.

A quarantined reading is never folded. The next reading is checked against the baseline; if it
is plausible there the quarantine was a one-off and folding goes on. If it is only plausible
against the last *quarantined* reading (the index stays at its new level), it **re-baselines as
for a meter change**: the worker hands it to the folds under an alias meter id
(``<meter>~rebaselined@<time>``, ``TrustState.alias``; every later reading of the PDL keeps it
until the real meter id changes), so tables/deltas.py starts from it with no energy across the
jump.
"""

from __future__ import annotations

import base64
import hmac
import json
import secrets as _secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from hashlib import sha256
from typing import Any, Mapping

from tables import stored_json
from tables.frozen import replace

SCHEMA_VERSION = 1
HEADER_GATEWAY = "linky-gateway"
HEADER_KEY_ID = "linky-key-id"
HEADER_SIGNATURE = "linky-sig"
SIGNATURE_CONTEXT = b"linky-reading-v1\n"
KEY_BYTES = 32

# Rejection reasons (linky_stream_readings_rejected_total{reason}); quarantine reasons below.
REJECT_REASONS = ("unsigned", "gateway_not_provisioned", "gateway_revoked", "key_unknown", "key_expired",
                  "bad_signature", "pdl_mismatch", "replay")
QUARANTINE_REASONS = ("future_reading", "impossible_growth", "injection_on_consumer")
ALERT_UNTRUSTED = "gateway_untrusted"
ALERT_QUARANTINED = "reading_quarantined"
RECENT_KEPT = 50
ALIAS_MARK = "~rebaselined@"


class TrustError(ValueError):
    """An invalid registry document, key file or CLI request (the message says what)."""


# --------------------------------------------------------------------------- registry documents


@dataclass(frozen=True)
class GatewayKey:
    secret: bytes
    created_at: datetime
    expires_at: datetime | None = None  # set by a rotation: valid until then


@dataclass(frozen=True)
class Gateway:
    created_at: datetime
    revoked_at: datetime | None = None
    keys: Mapping[str, GatewayKey] = field(default_factory=dict)


@dataclass(frozen=True)
class PdlGateways:
    """The registry document of one PDL: the gateways allowed to sign its readings."""

    pdl: str
    gateways: Mapping[str, Gateway] = field(default_factory=dict)


def new_secret() -> bytes:
    return _secrets.token_bytes(KEY_BYTES)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str, where: str) -> bytes:
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError):
        raise TrustError(f"{where}: secret is not base64url") from None
    if len(data) < 16:
        raise TrustError(f"{where}: secret shorter than 16 bytes")
    return data


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _time(value: Any, where: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise TrustError(f"{where}: not an ISO-8601 time: {value!r}") from None
    if parsed.tzinfo is None:
        raise TrustError(f"{where}: time without a UTC offset: {value!r}")
    return parsed


def registry_to_dict(doc: PdlGateways) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "pdl": doc.pdl,
        "gateways": {
            gid: {"created_at": _iso(g.created_at), "revoked_at": _iso(g.revoked_at),
                  "keys": {kid: {"secret": _b64(k.secret), "created_at": _iso(k.created_at),
                                 "expires_at": _iso(k.expires_at)} for kid, k in g.keys.items()}}
            for gid, g in doc.gateways.items()
        },
    }


def registry_from_dict(data: Any) -> PdlGateways:
    if not isinstance(data, dict) or not isinstance(data.get("pdl"), str):
        raise TrustError("gateway document: expected an object with a string pdl")
    gateways: dict[str, Gateway] = {}
    raw_gateways = data.get("gateways") or {}
    if not isinstance(raw_gateways, dict):
        raise TrustError("gateway document: gateways must be an object")
    for gid, g in raw_gateways.items():
        where = f"gateway {gid}"
        if not isinstance(g, dict) or not isinstance(g.get("keys") or {}, dict):
            raise TrustError(f"{where}: expected an object with keys")
        keys = {}
        for kid, k in (g.get("keys") or {}).items():
            if not isinstance(k, dict) or not isinstance(k.get("secret"), str):
                raise TrustError(f"{where} key {kid}: expected an object with a secret")
            keys[str(kid)] = GatewayKey(_unb64(k["secret"], f"{where} key {kid}"),
                                        _time(k.get("created_at"), where) or datetime.min.replace(tzinfo=timezone.utc),
                                        _time(k.get("expires_at"), where))
        gateways[str(gid)] = Gateway(_time(g.get("created_at"), where) or datetime.min.replace(tzinfo=timezone.utc),
                                     _time(g.get("revoked_at"), where), keys)
    return PdlGateways(data["pdl"], gateways)


def encode_registry(doc: PdlGateways) -> bytes:
    return json.dumps(registry_to_dict(doc), separators=(",", ":"), sort_keys=True).encode()


def decode_registry(value: bytes, *, pdl: str | None = None) -> PdlGateways:
    try:
        data = json.loads(value)
    except ValueError as exc:
        raise TrustError(f"gateway record is not JSON: {exc}") from None
    doc = registry_from_dict(data)
    if pdl is not None and doc.pdl != pdl:
        raise TrustError(f"pdl: the document is for {doc.pdl!r} but the record key is {pdl!r}")
    return doc


def check_gateway_id(gateway_id: str) -> str:
    if not gateway_id or len(gateway_id) > 64 or not all(c.isalnum() or c in "-_." for c in gateway_id):
        raise TrustError(f"gateway id {gateway_id!r}: 1-64 characters among letters, digits, '-', '_', '.'")
    return gateway_id


def add_gateway(doc: PdlGateways, gateway_id: str, key_id: str, secret: bytes, now: datetime) -> PdlGateways:
    """Provision ``gateway_id`` for the PDL with one key (a revoked gateway is not re-enabled)."""
    check_gateway_id(gateway_id)
    current = doc.gateways.get(gateway_id)
    if current is not None and current.revoked_at is not None:
        raise TrustError(f"gateway {gateway_id} is revoked for {doc.pdl}: provision a new gateway id")
    keys = dict(current.keys) if current else {}
    keys[key_id] = GatewayKey(secret, now)
    gateway = Gateway(current.created_at if current else now, None, keys)
    return replace(doc, gateways={**doc.gateways, gateway_id: gateway})


def rotate_gateway(doc: PdlGateways, gateway_id: str, key_id: str, secret: bytes, now: datetime,
                   window: timedelta) -> PdlGateways:
    """Add a new key; every older key of the gateway stays valid until ``now + window``."""
    current = doc.gateways.get(gateway_id)
    if current is None or current.revoked_at is not None:
        raise TrustError(f"gateway {gateway_id} is not an active gateway of {doc.pdl}")
    if key_id in current.keys:
        raise TrustError(f"gateway {gateway_id} already has a key {key_id}")
    until = now + window
    keys = {kid: k if (k.expires_at is not None and k.expires_at <= until) else replace(k, expires_at=until)
            for kid, k in current.keys.items()}
    keys[key_id] = GatewayKey(secret, now)
    return replace(doc, gateways={**doc.gateways, gateway_id: replace(current, keys=keys)})


def revoke_gateway(doc: PdlGateways, gateway_id: str, now: datetime) -> PdlGateways:
    current = doc.gateways.get(gateway_id)
    if current is None:
        raise TrustError(f"gateway {gateway_id} is not provisioned for {doc.pdl}")
    if current.revoked_at is not None:
        return doc
    return replace(doc, gateways={**doc.gateways, gateway_id: replace(current, revoked_at=now)})


def public_view(doc: PdlGateways) -> dict[str, Any]:
    """The document without secrets (``gateway show``, logs)."""
    data = registry_to_dict(doc)
    for g in data["gateways"].values():
        for k in g["keys"].values():
            k.pop("secret")
    return data


# --------------------------------------------------------------------------- key file (edge side)


@dataclass(frozen=True)
class KeyFile:
    gateway_id: str
    key_id: str
    secret: bytes

    def to_json(self) -> str:
        return json.dumps({"gateway_id": self.gateway_id, "key_id": self.key_id, "secret": _b64(self.secret)}) + "\n"


def parse_key_file(text: str, where: str = "key file") -> KeyFile:
    try:
        data = json.loads(text)
    except ValueError:
        raise TrustError(f"{where}: not JSON") from None
    if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in ("gateway_id", "key_id", "secret")):
        raise TrustError(f"{where}: expected gateway_id, key_id and secret")
    return KeyFile(check_gateway_id(data["gateway_id"]), data["key_id"], _unb64(data["secret"], where))


# --------------------------------------------------------------------------- signatures


def signature(secret: bytes, gateway_id: str, key_id: str, value: bytes) -> str:
    """HMAC-SHA256 (hex) of one record value, bound to the gateway and key ids."""
    message = SIGNATURE_CONTEXT + gateway_id.encode() + b"\n" + key_id.encode() + b"\n" + value
    return hmac.new(secret, message, sha256).hexdigest()


def sign_headers(key: KeyFile, value: bytes) -> list[tuple[str, bytes]]:
    """The record headers the edge sends with ``value``."""
    return [(HEADER_GATEWAY, key.gateway_id.encode()), (HEADER_KEY_ID, key.key_id.encode()),
            (HEADER_SIGNATURE, signature(key.secret, key.gateway_id, key.key_id, value).encode())]


@dataclass(frozen=True)
class Signed:
    """The outcome of ``verify_headers``: ``reason`` None = verified (or unsigned and accepted)."""

    reason: str | None
    gateway_id: str | None = None
    key_id: str | None = None
    signed: bool = False


def header_map(headers: Any) -> dict[str, bytes]:
    """Record headers (faust: a list of (str, bytes) pairs or a mapping) as a dict."""
    if not headers:
        return {}
    items = headers.items() if isinstance(headers, Mapping) else headers
    out: dict[str, bytes] = {}
    for name, value in items:
        out[name.decode() if isinstance(name, bytes) else str(name)] = value if isinstance(value, bytes) else (
            str(value).encode() if value is not None else b"")
    return out


def verify_headers(doc: PdlGateways | None, headers: Mapping[str, bytes], value: bytes, *, key_pdl: str,
                   value_pdl: Any, reading_time: datetime | None, now: datetime, accept_unsigned: bool,
                   grace: timedelta) -> Signed:
    """Check a record's signature against the PDL's registry document (see the module docstring).

    A key with ``expires_at`` signs readings dated before it, processed before ``expires_at + grace``."""
    gid_raw, kid_raw, sig_raw = (headers.get(h) for h in (HEADER_GATEWAY, HEADER_KEY_ID, HEADER_SIGNATURE))
    if gid_raw is None and kid_raw is None and sig_raw is None:
        bound = doc is not None and bool(doc.gateways)
        if accept_unsigned and not bound:
            return Signed(None)
        return Signed("unsigned")
    gid = (gid_raw or b"").decode(errors="replace")
    kid = (kid_raw or b"").decode(errors="replace")
    gateway = doc.gateways.get(gid) if doc is not None else None
    if gateway is None:
        return Signed("gateway_not_provisioned", gid, kid, True)
    if gateway.revoked_at is not None and now >= gateway.revoked_at:
        return Signed("gateway_revoked", gid, kid, True)
    key = gateway.keys.get(kid)
    if key is None:
        return Signed("key_unknown", gid, kid, True)
    if key.expires_at is not None and (now >= key.expires_at + grace or reading_time is None
                                       or reading_time >= key.expires_at):
        return Signed("key_expired", gid, kid, True)
    expected = signature(key.secret, gid, kid, value)
    if not hmac.compare_digest(expected.encode(), sig_raw or b""):
        return Signed("bad_signature", gid, kid, True)
    if value_pdl != key_pdl:
        return Signed("pdl_mismatch", gid, kid, True)
    return Signed(None, gid, kid, True)


# --------------------------------------------------------------------------- plausibility


@dataclass(frozen=True)
class Point:
    """What plausibility needs of a reading: its time, meter id and total indexes."""

    time: datetime
    meter: str | None
    import_wh: int | None
    export_wh: int | None
    subscribed_kva: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"t": self.time.isoformat(), "m": self.meter, "i": self.import_wh, "e": self.export_wh,
                "k": self.subscribed_kva}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Point":
        return cls(datetime.fromisoformat(data["t"]), data.get("m"), data.get("i"), data.get("e"), data.get("k"))


@dataclass(frozen=True)
class Plausibility:
    tolerance: float = 0.5  # the bound is subscribed power x elapsed x (1 + tolerance)...
    slack_wh: int = 20  # ...plus this (index resolution)
    max_future: timedelta = timedelta(hours=1)
    default_kva: float = 36.0  # when no reading gave a subscribed power (the largest "tarif bleu")


def _index(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def point_of(reading: Mapping[str, Any]) -> Point | None:
    """The reading's Point, None without a usable time."""
    try:
        t = datetime.fromisoformat(reading["time"])
    except (KeyError, TypeError, ValueError):
        return None
    if t.tzinfo is None:
        return None
    kva = reading.get("subscribed_kva")
    kva = float(kva) if isinstance(kva, (int, float)) and not isinstance(kva, bool) and kva > 0 else None
    meter = reading.get("meter")
    return Point(t, str(meter) if meter is not None else None, _index(reading.get("import_wh")),
                 _index(reading.get("export_wh")), kva)


def growth_bound_wh(kva: float, elapsed: timedelta, rules: Plausibility) -> float:
    return kva * 1000.0 * elapsed.total_seconds() / 3600.0 * (1.0 + rules.tolerance) + rules.slack_wh


def check_growth(before: Point, after: Point, *, producer: bool, rules: Plausibility) -> tuple[str, dict[str, Any]] | None:
    """``(reason, details)`` when ``after`` cannot follow ``before`` physically, else None.
    Readings not newer than ``before`` and meter changes are not judged (tables/deltas.py's rules)."""
    if after.time <= before.time or (after.meter is not None and before.meter is not None and after.meter != before.meter):
        return None
    kva = after.subscribed_kva or before.subscribed_kva or rules.default_kva
    bound = growth_bound_wh(kva, after.time - before.time, rules)
    details: dict[str, Any] = {"previous_time": before.time.isoformat(), "subscribed_kva": kva,
                               "bound_wh": round(bound)}
    for name, old, new in (("import_wh", before.import_wh, after.import_wh), ("export_wh", before.export_wh, after.export_wh)):
        if old is not None and new is not None and new - old > bound:
            return "impossible_growth", {**details, "index": name, "previous": old, "current": new, "delta_wh": new - old}
    if (not producer and before.export_wh is not None and after.export_wh is not None
            and after.export_wh - before.export_wh > rules.slack_wh):
        return "injection_on_consumer", {**details, "previous": before.export_wh, "current": after.export_wh,
                                         "delta_wh": after.export_wh - before.export_wh}
    return None


def is_producer(reading: Mapping[str, Any], producer_contract: bool) -> bool:
    """May this PDL inject? A producer contract, or the meter's STGE saying producer (or unknown)."""
    if producer_contract:
        return True
    status = reading.get("status")
    if not isinstance(status, Mapping) or "producer" not in status:
        return True  # no STGE (historic mode) or not decoded: the rule does not apply
    return bool(status.get("producer"))


# --------------------------------------------------------------------------- per-PDL trust state


@dataclass(frozen=True)
class TrustState:
    baseline: Point | None = None  # the last plausible reading folded
    pending: Point | None = None  # the last reading quarantined for its indexes
    alias: str | None = None  # meter id given to the folds after a re-baseline
    alias_of: str | None = None  # the real meter id behind the alias
    last_time: datetime | None = None  # newest accepted reading (replay rule)
    last_offset: int = -1  # its Kafka offset
    quarantined: tuple[dict[str, Any], ...] = ()  # newest last, RECENT_KEPT at most
    rejected: tuple[dict[str, Any], ...] = ()
    alerts: Mapping[str, dict[str, Any]] = field(default_factory=dict)  # open kind -> {since, last, reason}


def state_to_dict(st: TrustState) -> dict[str, Any]:
    return {"v": SCHEMA_VERSION, "b": st.baseline.to_dict() if st.baseline else None,
            "p": st.pending.to_dict() if st.pending else None, "a": st.alias, "ao": st.alias_of,
            "lt": _iso(st.last_time), "lo": st.last_offset, "q": list(st.quarantined), "r": list(st.rejected),
            "al": dict(st.alerts)}


def state_from_dict(data: Mapping[str, Any]) -> TrustState:
    return TrustState(
        baseline=Point.from_dict(data["b"]) if data.get("b") else None,
        pending=Point.from_dict(data["p"]) if data.get("p") else None,
        alias=data.get("a"), alias_of=data.get("ao"),
        last_time=datetime.fromisoformat(data["lt"]) if data.get("lt") else None,
        last_offset=int(data.get("lo", -1)),
        quarantined=tuple(data.get("q") or ()), rejected=tuple(data.get("r") or ()),
        alerts=dict(data.get("al") or {}),
    )


def encode_state(st: TrustState) -> bytes:
    return stored_json.dumps(state_to_dict(st))


def decode_state(raw: bytes | None) -> TrustState:
    return TrustState() if raw is None else state_from_dict(json.loads(raw))


@dataclass(frozen=True)
class Decision:
    """What to do with one reading: ``action`` fold | reject | quarantine; ``meter`` = the meter
    id to give the folds when it differs from the reading's (a re-baseline alias), else None."""

    action: str
    reason: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    meter: str | None = None
    rebaselined: bool = False


def judge(st: TrustState, point: Point | None, *, now: datetime, offset: int, signed: Signed,
          producer: bool, rules: Plausibility, replay_window: timedelta,
          plausibility: bool = True) -> tuple[TrustState, Decision]:
    """Decide one reading's fate from the signature outcome and the PDL's trust state; return the
    new state (recent lists, alerts are ``note``'s business). ``plausibility`` False (an unsigned
    reading accepted in roll-out mode, unless LINKY_TRUST_CHECK_UNSIGNED): folded as before this
    module existed, the state untouched."""
    if signed.reason is not None:
        return st, Decision("reject", signed.reason, {"gateway_id": signed.gateway_id, "key_id": signed.key_id})
    if point is None or not plausibility:  # no usable time: the folds refuse it themselves (their own counters)
        return st, Decision("fold")
    if (signed.signed and st.last_time is not None and offset > st.last_offset
            and point.time < st.last_time - replay_window):
        return st, Decision("reject", "replay", {"gateway_id": signed.gateway_id, "time": point.time.isoformat(),
                                                  "newest_accepted": st.last_time.isoformat()})
    if point.time > now + rules.max_future:
        return st, Decision("quarantine", "future_reading", {"time": point.time.isoformat(), "now": now.isoformat()})
    meter_changed = (st.alias_of is not None and point.meter is not None and point.meter != st.alias_of)
    if meter_changed:  # a real meter change ends the alias: tables/deltas.py re-baselines anyway
        st = replace(st, alias=None, alias_of=None)
    rebaselined = False
    if st.baseline is not None:
        verdict = check_growth(st.baseline, point, producer=producer, rules=rules)
        if verdict is not None:
            against_pending = (None if st.pending is None
                               else check_growth(st.pending, point, producer=producer, rules=rules))
            if st.pending is None or against_pending is not None or point.time <= st.pending.time:
                pending = point if st.pending is None or point.time > st.pending.time else st.pending
                return replace(st, pending=pending), Decision("quarantine", verdict[0], verdict[1])
            rebaselined = True  # plausible after the quarantined level: a new baseline
    newer = st.baseline is None or point.time > st.baseline.time
    alias = st.alias
    alias_of = st.alias_of
    if rebaselined:
        alias_of = point.meter or ""
        alias = f"{point.meter or ''}{ALIAS_MARK}{point.time.isoformat()}"
    st = replace(
        st,
        baseline=point if newer else st.baseline,
        pending=None if newer else st.pending,
        alias=alias, alias_of=alias_of,
        last_time=point.time if st.last_time is None or point.time > st.last_time else st.last_time,
        last_offset=max(st.last_offset, offset),
    )
    return st, Decision("fold", meter=alias, rebaselined=rebaselined)


def note(st: TrustState, decision: Decision, *, pdl: str, at: datetime, now: datetime, offset: int,
         clear_after: timedelta) -> tuple[TrustState, list[tuple[str, str, dict[str, Any]]]]:
    """Record a rejection/quarantine in the recent lists and open/clear the trust alerts.
    Returns the new state and the alert events ``(kind, action, details)``."""
    events: list[tuple[str, str, dict[str, Any]]] = []
    alerts = dict(st.alerts)
    if decision.action in ("reject", "quarantine"):
        kind = ALERT_UNTRUSTED if decision.action == "reject" else ALERT_QUARANTINED
        entry = {"reason": decision.reason, "received_at": now.isoformat(), "time": at.isoformat(),
                 "offset": offset, "details": dict(decision.details)}
        if decision.action == "reject":
            st = replace(st, rejected=(*st.rejected, entry)[-RECENT_KEPT:])
        else:
            st = replace(st, quarantined=(*st.quarantined, entry)[-RECENT_KEPT:])
        if kind in alerts:
            alerts[kind] = {**alerts[kind], "last": now.isoformat(), "reason": decision.reason}
        else:
            alerts[kind] = {"since": now.isoformat(), "last": now.isoformat(), "reason": decision.reason}
            events.append((kind, "open", {"reason": decision.reason, **{k: v for k, v in decision.details.items()
                                                                      if k in ("gateway_id", "index", "time")}}))
    else:
        for kind, info in list(alerts.items()):
            if now - datetime.fromisoformat(info["last"]) >= clear_after:
                alerts.pop(kind)
                events.append((kind, "clear", {}))
    return replace(st, alerts=alerts), events


def registry_loaded(ends: dict[int, int], committed: dict[int, int], read_up_to: dict[int, int]) -> bool:
    """Whether the registry table holds every record the topic had at start-up: per partition,
    the end offset then is 0, or the group had committed past it (the table was recovered from its
    changelog), or the agent has handled the record before it."""
    return all(end <= 0 or committed.get(p, -1) >= end or read_up_to.get(p, -1) >= end - 1
               for p, end in ends.items())  # fmt: skip
