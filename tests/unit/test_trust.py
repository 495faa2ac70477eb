"""tables/trust.py: gateway documents, signatures, replay and plausibility rules (pure)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from tables import trust
from tables.trust import (
    KeyFile,
    PdlGateways,
    Plausibility,
    Point,
    Signed,
    TrustError,
    TrustState,
    add_gateway,
    decode_registry,
    encode_registry,
    judge,
    note,
    parse_key_file,
    revoke_gateway,
    rotate_gateway,
    sign_headers,
    verify_headers,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
PDL = "12345678901234"
SECRET = b"s" * 32
GRACE = timedelta(hours=1)


def doc_with(*gateways: str, now: datetime = T0) -> PdlGateways:
    doc = PdlGateways(PDL)
    for gid in gateways:
        doc = add_gateway(doc, gid, "k1", SECRET + gid.encode(), now)
    return doc


def key(gid: str, kid: str = "k1") -> KeyFile:
    return KeyFile(gid, kid, SECRET + gid.encode())


def check(doc: PdlGateways | None, headers: list[tuple[str, bytes]] | None, value: bytes, *,
          accept_unsigned: bool = False, now: datetime = T0, reading_time: datetime = T0,
          value_pdl: str = PDL) -> str | None:
    return verify_headers(doc, dict(headers or []), value, key_pdl=PDL, value_pdl=value_pdl,
                          reading_time=reading_time, now=now, accept_unsigned=accept_unsigned, grace=GRACE).reason


VALUE = b'{"pdl":"12345678901234","time":"2026-03-01T12:00:00+00:00","import_wh":10}'


def test_a_signed_reading_of_a_provisioned_gateway_verifies() -> None:
    assert check(doc_with("gw1"), sign_headers(key("gw1"), VALUE), VALUE) is None


@pytest.mark.parametrize("tamper", [
    lambda v: v.replace(b"10}", b"11}"),  # one digit of the payload
    lambda v: v + b" ",  # a trailing byte
    lambda v: v.replace(b"12:00:00", b"12:00:01"),  # the time
])  # fmt: skip
def test_any_change_to_the_value_breaks_the_signature(tamper) -> None:  # type: ignore[no-untyped-def]
    assert check(doc_with("gw1"), sign_headers(key("gw1"), VALUE), tamper(VALUE)) == "bad_signature"


def test_refusals_name_their_reason() -> None:
    doc = doc_with("gw1", "gw2")
    assert check(doc, sign_headers(key("gw3"), VALUE), VALUE) == "gateway_not_provisioned"
    assert check(None, sign_headers(key("gw1"), VALUE), VALUE) == "gateway_not_provisioned"
    assert check(doc, sign_headers(key("gw1", "k9"), VALUE), VALUE) == "key_unknown"
    # gw2's key under gw1's name: the signature binds the gateway id
    forged = [(n, v) if n != trust.HEADER_GATEWAY else (n, b"gw1") for n, v in sign_headers(key("gw2"), VALUE)]
    assert check(doc, forged, VALUE) == "bad_signature"
    no_sig = [(n, v) for n, v in sign_headers(key("gw1"), VALUE) if n != trust.HEADER_SIGNATURE]
    assert check(doc, no_sig, VALUE) == "bad_signature"
    assert check(doc, sign_headers(key("gw1"), VALUE), VALUE, value_pdl="99999999999999") == "pdl_mismatch"
    revoked = revoke_gateway(doc, "gw1", T0 + timedelta(minutes=1))
    assert check(revoked, sign_headers(key("gw1"), VALUE), VALUE, now=T0) is None  # before the revocation
    assert check(revoked, sign_headers(key("gw1"), VALUE), VALUE, now=T0 + timedelta(minutes=1)) == "gateway_revoked"
    assert check(revoked, sign_headers(key("gw2"), VALUE), VALUE, now=T0 + timedelta(hours=1)) is None


def test_unsigned_readings_only_in_roll_out_and_only_for_pdls_without_a_gateway() -> None:
    assert check(None, None, VALUE, accept_unsigned=True) is None
    assert check(PdlGateways(PDL), None, VALUE, accept_unsigned=True) is None
    assert check(None, None, VALUE, accept_unsigned=False) == "unsigned"
    assert check(doc_with("gw1"), None, VALUE, accept_unsigned=True) == "unsigned"  # bound: never unsigned


def test_rotation_keeps_the_old_key_for_the_window_then_expires_it() -> None:
    doc = rotate_gateway(doc_with("gw1"), "gw1", "k2", b"n" * 32, T0, timedelta(hours=24))
    old, new = sign_headers(key("gw1"), VALUE), sign_headers(KeyFile("gw1", "k2", b"n" * 32), VALUE)
    assert check(doc, new, VALUE) is None
    assert check(doc, old, VALUE, now=T0 + timedelta(hours=23), reading_time=T0 + timedelta(hours=23)) is None
    # a reading dated after the window, or processed after window + grace: expired
    assert check(doc, old, VALUE, now=T0 + timedelta(hours=24), reading_time=T0 + timedelta(hours=24)) == "key_expired"
    assert check(doc, old, VALUE, now=T0 + timedelta(hours=25), reading_time=T0) == "key_expired"
    with pytest.raises(TrustError):
        rotate_gateway(doc, "gw1", "k2", b"n" * 32, T0, timedelta(hours=1))  # same key id twice
    with pytest.raises(TrustError):
        rotate_gateway(revoke_gateway(doc, "gw1", T0), "gw1", "k3", b"n" * 32, T0, timedelta(hours=1))


def test_documents_round_trip_and_bad_ones_are_refused() -> None:
    doc = rotate_gateway(doc_with("gw1"), "gw1", "k2", b"n" * 32, T0, timedelta(hours=2))
    assert decode_registry(encode_registry(doc), pdl=PDL) == doc
    with pytest.raises(TrustError, match="record key"):
        decode_registry(encode_registry(doc), pdl="00000000000000")
    for bad in (b"nope", b"[]", b'{"pdl": 1}', b'{"pdl": "1", "gateways": {"g": {"keys": {"k": {"secret": "c2hvcnQ"}}}}}'):
        with pytest.raises(TrustError):
            decode_registry(bad)
    assert "secret" not in str(trust.public_view(doc))
    with pytest.raises(TrustError, match="revoked"):
        add_gateway(revoke_gateway(doc, "gw1", T0), "gw1", "k3", SECRET, T0)
    with pytest.raises(TrustError, match="gateway id"):
        add_gateway(doc, "bad id", "k1", SECRET, T0)


def test_key_files_round_trip() -> None:
    k = key("gw1")
    assert parse_key_file(k.to_json()) == k
    for bad in ("", "{}", '{"gateway_id": "g", "key_id": "k", "secret": "!!"}'):
        with pytest.raises(TrustError):
            parse_key_file(bad)


# --------------------------------------------------------------------------- plausibility


RULES = Plausibility(tolerance=0.5, slack_wh=20, max_future=timedelta(hours=1))
OK = Signed(None, "gw1", "k1", True)


def pt(minutes: float, imp: int, exp: int | None = 0, meter: str = "M1", kva: float = 6.0) -> Point:
    return Point(T0 + timedelta(minutes=minutes), meter, imp, exp, kva)


def run(points: list[Point], *, producer: bool = True, now: datetime | None = None,
        state: TrustState | None = None) -> tuple[TrustState, list[trust.Decision]]:
    st = state or TrustState()
    out = []
    for i, p in enumerate(points):
        st, d = judge(st, p, now=now or T0 + timedelta(days=1), offset=i + (st.last_offset + 1), signed=OK,
                      producer=producer, rules=RULES, replay_window=timedelta(hours=1))
        out.append(d)
    return st, out


def test_the_growth_bound_is_subscribed_power_times_elapsed_plus_tolerance() -> None:
    # 6 kVA for 15 minutes: 1500 Wh, x 1.5 + 20 = 2270 Wh
    assert trust.growth_bound_wh(6.0, timedelta(minutes=15), RULES) == pytest.approx(2270)
    _, d = run([pt(0, 1000), pt(15, 1000 + 2270)])
    assert d[1].action == "fold"
    _, d = run([pt(0, 1000), pt(15, 1000 + 2271)])
    assert (d[1].action, d[1].reason) == ("quarantine", "impossible_growth")
    _, d = run([pt(0, 1000, 0), pt(15, 1000, 2271)])  # export too
    assert (d[1].action, d[1].reason) == ("quarantine", "impossible_growth")


def test_a_spike_is_quarantined_and_the_next_plausible_reading_resumes_from_the_baseline() -> None:
    st, d = run([pt(0, 1000), pt(15, 500_000), pt(30, 1100)])
    assert [x.action for x in d] == ["fold", "quarantine", "fold"]
    assert not d[2].rebaselined and d[2].meter is None
    assert st.baseline == pt(30, 1100) and st.pending is None


def test_a_level_shift_re_baselines_under_an_alias_meter_id_until_the_meter_changes() -> None:
    st, d = run([pt(0, 1000), pt(15, 500_000), pt(30, 500_050), pt(45, 500_100)])
    assert [x.action for x in d] == ["fold", "quarantine", "fold", "fold"]
    assert d[2].rebaselined and d[2].meter == f"M1{trust.ALIAS_MARK}{pt(30, 0).time.isoformat()}"
    assert d[3].meter == d[2].meter and not d[3].rebaselined  # kept: the folds see one meter change
    st, d = run([replace(pt(60, 10), meter="M2")], state=st)
    assert d[0].action == "fold" and d[0].meter is None and st.alias is None  # a real new meter


def test_injection_on_a_consumer_only_pdl() -> None:
    _, d = run([pt(0, 1000, 0), pt(15, 1000, 300)], producer=False)
    assert (d[1].action, d[1].reason) == ("quarantine", "injection_on_consumer")
    _, d = run([pt(0, 1000, 0), pt(15, 1000, 300)], producer=True)
    assert d[1].action == "fold"
    _, d = run([pt(0, 1000, 0), pt(15, 1000, 20)], producer=False)  # within the index slack
    assert d[1].action == "fold"


def test_is_producer_reads_the_contract_then_the_stge() -> None:
    assert trust.is_producer({"status": {"producer": False}}, producer_contract=True)
    assert not trust.is_producer({"status": {"producer": False}}, producer_contract=False)
    assert trust.is_producer({"status": {"producer": True}}, producer_contract=False)
    assert trust.is_producer({"status": None}, producer_contract=False)  # unknown: not judged


def test_a_reading_dated_far_in_the_future_is_quarantined_and_never_a_baseline() -> None:
    now = T0 + timedelta(minutes=30)
    st, d = run([pt(0, 1000), pt(30 + 61, 1010), pt(30, 1020)], now=now)
    assert [x.reason for x in d] == [None, "future_reading", None]
    assert st.baseline == pt(30, 1020)
    _, d = run([pt(0, 1000), pt(30 + 59, 1010)], now=now)  # within max_future
    assert d[1].action == "fold"


def test_replay_is_an_old_signed_reading_in_a_new_record() -> None:
    st, _ = run([pt(m, 1000 + m) for m in range(0, 181, 15)])  # up to 15:00, offsets 0..12
    old = pt(30, 1030)
    # a new record (offset above the last accepted) dated more than the window before the newest
    _, d = judge(st, old, now=T0 + timedelta(days=1), offset=99, signed=OK, producer=True, rules=RULES,
                 replay_window=timedelta(hours=1))
    assert (d.action, d.reason) == ("reject", "replay")
    # within the window: an edge spool re-send, handed to the folds (which ignore it)
    _, d = judge(st, pt(150, 1150), now=T0 + timedelta(days=1), offset=99, signed=OK, producer=True,
                 rules=RULES, replay_window=timedelta(hours=1))
    assert d.action == "fold"
    # the worker re-reading its own log (offset not above the last accepted): not a replay
    _, d = judge(st, old, now=T0 + timedelta(days=1), offset=2, signed=OK, producer=True, rules=RULES,
                 replay_window=timedelta(hours=1))
    assert d.action == "fold"


def test_note_keeps_recent_refusals_and_opens_each_alert_once_then_clears_it() -> None:
    st = TrustState()
    reject = trust.Decision("reject", "bad_signature", {"gateway_id": "gw1"})
    st, events = note(st, reject, pdl=PDL, at=T0, now=T0, offset=1, clear_after=timedelta(hours=1))
    assert events == [("gateway_untrusted", "open", {"reason": "bad_signature", "gateway_id": "gw1"})]
    st, events = note(st, reject, pdl=PDL, at=T0, now=T0 + timedelta(minutes=1), offset=2, clear_after=timedelta(hours=1))
    assert events == [] and len(st.rejected) == 2
    st, events = note(st, trust.Decision("fold"), pdl=PDL, at=T0, now=T0 + timedelta(minutes=30), offset=3,
                      clear_after=timedelta(hours=1))
    assert events == []
    st, events = note(st, trust.Decision("fold"), pdl=PDL, at=T0, now=T0 + timedelta(minutes=61), offset=4,
                      clear_after=timedelta(hours=1))
    assert events == [("gateway_untrusted", "clear", {})] and not st.alerts
    assert trust.decode_state(trust.encode_state(st)) == st


def test_unsigned_roll_out_readings_are_folded_unchecked_unless_asked() -> None:
    st, _ = run([pt(0, 1000)])
    unsigned = Signed(None)
    for plausibility, action in ((False, "fold"), (True, "quarantine")):
        after, d = judge(st, pt(15, 900_000), now=T0 + timedelta(days=1), offset=5, signed=unsigned, producer=True,
                         rules=RULES, replay_window=timedelta(hours=1), plausibility=plausibility)
        assert d.action == action
    assert judge(st, pt(15, 900_000), now=T0, offset=5, signed=unsigned, producer=True, rules=RULES,
                 replay_window=timedelta(hours=1), plausibility=False)[0] == st  # state untouched


def test_the_registry_counts_as_loaded_only_once_every_start_up_record_was_handled() -> None:
    from tables.trust import registry_loaded

    ends = {0: 0, 1: 5, 2: 3}  # partition 0 empty
    assert not registry_loaded(ends, {}, {})
    assert not registry_loaded(ends, {}, {1: 4})  # partition 2 not read yet
    assert not registry_loaded(ends, {}, {1: 3, 2: 2})  # partition 1 one record short
    assert registry_loaded(ends, {}, {1: 4, 2: 2})
    assert registry_loaded(ends, {1: 5, 2: 3}, {})  # a restart: committed (table recovered from its changelog)
    assert registry_loaded({0: 0}, {}, {})
