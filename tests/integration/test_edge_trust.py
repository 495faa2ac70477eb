"""Edge trust against the real broker's SASL_SSL listener (TLS + SCRAM-SHA-512 + StandardAuthorizer
ACLs, deploy/local/stack.py) and the real worker (docs/security.md).

1. The broker: the edge user produces over SASL_SSL; no credentials, a wrong password, the edge
   user reading a topic, writing a changelog or creating a topic are refused.
2. The worker over SASL_SSL as ``linky-worker``, gateways provisioned by the CLI: the edge
   (teleinfo.publisher with the gateway's key file) publishes a producer PDL's day and a control
   PDL's identical day; forged records (a valid gateway for a PDL it is not provisioned for, a
   tampered payload, a revoked gateway, a replayed old reading, an unsigned one) are refused and
   counted, the totals equal the ground truth and the battery equals the control's; a key rotation
   (old key still in flight) loses nothing. Impossible readings of a consumer PDL are quarantined,
   listed on ``/pdl/{pdl}/quarantine``, alerted, never counted; the next plausible ones resume.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import ssl
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from deploy.local.stack import StackConfig
from stream import clock
from stream.contracts import ensure_contracts_topic, write_contract
from stream.kafka_security import client_kwargs
from stream.settings import Settings
from tables.contracts import Contract, add_version, version_from_dict
from tables.trust import HEADER_KEY_ID, KeyFile, parse_key_file, sign_headers
from teleinfo.metrics import EdgeMetrics
from teleinfo.publisher import AiokafkaSink, GatewaySigner, Publisher
from teleinfo.spool import Spool
from tests.conftest import free_port
from tests.integration.battery_world import Worker, run_cli, worker_env
from tests.integration.edge_support import wait_for

pytestmark = pytest.mark.integration
PARIS = clock.PARIS
STEP = timedelta(minutes=15)


def settings_as(stack: StackConfig, user: str, **extra: str) -> Settings:
    return Settings.from_env({**stack.kafka_client_env(user), **extra})


def kafka(stack: StackConfig, user: str) -> dict[str, Any]:
    return {"bootstrap_servers": stack.tls_bootstrap_servers, **client_kwargs(settings_as(stack, user))}


async def create_topics(stack: StackConfig, *names: str, partitions: int = 2) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.bootstrap_servers)  # loopback PLAINTEXT: super user
    await admin.start()
    try:
        await admin.create_topics([NewTopic(n, num_partitions=partitions, replication_factor=1) for n in names])
    finally:
        await admin.close()


# --------------------------------------------------------------------------- 1. the broker


async def test_the_broker_lets_the_edge_produce_and_refuses_everything_else(
        stack: StackConfig, caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    uid = uuid.uuid4().hex[:10]
    readings, changelog = f"linky.readings.{uid}", f"linky-stream-{uid}-live-changelog"
    await create_topics(stack, readings, changelog)

    # the edge user over TLS + SCRAM-SHA-512: produce allowed
    edge = AIOKafkaProducer(**kafka(stack, "linky-edge"), acks="all", enable_idempotence=True)
    await edge.start()
    try:
        meta = await edge.send_and_wait(readings, b'{"pdl": "1"}', key=b"1")
        assert meta.offset == 0
        # ...but not to a worker's changelog
        with pytest.raises(Exception) as refused:
            await asyncio.wait_for(edge.send_and_wait(changelog, b"x", key=b"1"), 30)
        assert "TopicAuthorizationFailed" in type(refused.value).__name__, repr(refused.value)
    finally:
        await edge.stop()

    # the edge user may not read (with or without a consumer group)
    reader = AIOKafkaConsumer(**kafka(stack, "linky-edge"), group_id=f"linky-stream-{uid}", auto_offset_reset="earliest")
    with pytest.raises(Exception) as refused:
        await reader.start()
        reader.subscribe([readings])
        await asyncio.wait_for(reader.getone(), 30)
    await reader.stop()
    assert "AuthorizationFailed" in type(refused.value).__name__, repr(refused.value)
    reader = AIOKafkaConsumer(**kafka(stack, "linky-edge"))
    await reader.start()
    try:
        reader.assign([TopicPartition(readings, 0)])
        await reader.seek_to_beginning(TopicPartition(readings, 0))
        with pytest.raises(Exception) as refused:
            await asyncio.wait_for(reader.getone(), 30)
        assert "AuthorizationFailed" in type(refused.value).__name__, repr(refused.value)
    finally:
        await reader.stop()

    # the edge user may not create topics
    admin = AIOKafkaAdminClient(**kafka(stack, "linky-edge"))
    await admin.start()
    try:
        response = await admin.create_topics([NewTopic(f"linky.readings.{uid}.new", 1, 1)])
        assert [code for _, code, *_ in response.topic_errors] == [29]  # TOPIC_AUTHORIZATION_FAILED
    finally:
        await admin.close()

    # a wrong password: SASL authentication fails
    wrong = dict(kafka(stack, "linky-edge"), sasl_plain_password="not-the-password")
    producer = AIOKafkaProducer(**wrong, request_timeout_ms=5000)
    caplog.clear()
    with pytest.raises(Exception) as refused:  # aiokafka reports it as "Unable to bootstrap"...
        await asyncio.wait_for(producer.start(), 30)
    await producer.stop()
    assert "KafkaConnectionError" in type(refused.value).__name__, repr(refused.value)
    assert "SaslAuthenticationFailed" in caplog.text and "invalid credentials" in caplog.text  # ...after this
    caplog.clear()

    # no credentials at all: TLS without SASL, and plaintext, on the SASL_SSL port get nowhere
    tls_only = ssl.create_default_context(cafile=str(stack.ca_file))
    for kwargs in ({"security_protocol": "SSL", "ssl_context": tls_only}, {"security_protocol": "PLAINTEXT"}):
        producer = AIOKafkaProducer(bootstrap_servers=stack.tls_bootstrap_servers, request_timeout_ms=3000,
                                    metadata_max_age_ms=3000, **kwargs)
        with pytest.raises(Exception) as refused:
            await asyncio.wait_for(producer.start(), 20)
        await producer.stop()
        assert type(refused.value).__name__ in ("KafkaConnectionError", "TimeoutError"), repr(refused.value)
    assert "invalid credentials" not in caplog.text  # refused before any authentication

    # a certificate the client does not trust (no CA file: the system store) is refused by the client
    untrusted = dict(kafka(stack, "linky-edge"), ssl_context=ssl.create_default_context())
    producer = AIOKafkaProducer(**untrusted, request_timeout_ms=3000)
    caplog.clear()
    with pytest.raises(Exception):
        await asyncio.wait_for(producer.start(), 20)
    await producer.stop()
    assert "CERTIFICATE_VERIFY_FAILED" in caplog.text

    # the worker user cannot write the readings (only the edge can)
    worker = AIOKafkaProducer(**kafka(stack, "linky-worker"))
    await worker.start()
    try:
        with pytest.raises(Exception) as refused:
            await asyncio.wait_for(worker.send_and_wait(readings, b"x", key=b"1"), 30)
        assert "TopicAuthorizationFailed" in type(refused.value).__name__, repr(refused.value)
    finally:
        await worker.stop()


# --------------------------------------------------------------------------- 2. the worker


def reading(pdl: str, t: datetime, imp: int, exp: int, *, producer: bool) -> dict[str, Any]:
    local = t.astimezone(PARIS)
    return {"pdl": pdl, "meter": f"M{pdl[-6:]}", "mode": "standard", "time": local.isoformat(),
            "tariff_period": "HEURE PLEINE", "import_wh": imp, "import_wh_by_period": {"EASF01": 0, "EASF02": imp},
            "export_wh": exp, "power_va": 400, "export_power_va": 0, "current_a": [2], "voltage_v": [231],
            "subscribed_kva": 9, "overload": False, "status": {"producer": producer, "overload": False}}  # fmt: skip


def day_of(pdl: str, start: datetime, *, exporting: bool) -> tuple[list[dict[str, Any]], int, int]:
    """A producer's day every 15 minutes (00:00 to 24:00) and its true import and export."""
    imp, exp, out = 2_000_000, 300_000, []
    t = start
    end = start + timedelta(days=1)
    while t <= end:
        out.append(reading(pdl, t, imp, exp, producer=True))
        hour = t.astimezone(PARIS).hour
        imp += 40 + (hour * 7) % 30
        exp += 60 + hour % 5 if exporting and 9 <= hour < 17 else 0
        t += STEP
    first, last = out[0], out[-1]
    return out, last["import_wh"] - first["import_wh"], last["export_wh"] - first["export_wh"]


def edge_publisher(stack: StackConfig, topic: str, key_file: Path, spool: Path) -> Publisher:
    """The edge's own publishing code: SASL_SSL as linky-edge, signing with the key file."""
    cfg = settings_as(stack, "linky-edge")
    sink = AiokafkaSink(cfg.kafka_bootstrap, topic, partitions=2, security=client_kwargs(cfg),
                        signer=GatewaySigner(key_file))
    return Publisher(sink, Spool(spool), EdgeMetrics())


async def publish_all(publisher: Publisher, readings: list[dict[str, Any]]) -> None:
    task = asyncio.create_task(publisher.run())
    for r in readings:
        publisher.submit(r)
    deadline = asyncio.get_running_loop().time() + 60
    while publisher.pending and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
    assert publisher.pending == 0, "the edge could not publish over SASL_SSL"
    await publisher.close()
    await asyncio.wait_for(task, 10)


async def read_records(stack: StackConfig, topic: str) -> list[Any]:
    consumer = AIOKafkaConsumer(bootstrap_servers=stack.bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(2)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        records = []
        for tp in tps:
            while await consumer.position(tp) < ends[tp]:
                records += (await consumer.getmany(tp, timeout_ms=1000)).get(tp, [])
        return records
    finally:
        await consumer.stop()


async def test_forged_and_impossible_readings_are_refused_and_rotation_keeps_every_reading(
        stack: StackConfig, redis_url: str, redis_worker_url: str, tmp_path: Path) -> None:  # fmt: skip
    uid = uuid.uuid4().hex[:10]
    prefix = f"{uuid.uuid4().int % 10**8:08d}"
    victim, control, other, quarantine = (f"{prefix}{i:06d}" for i in range(1, 5))
    topic = f"linky.readings.{uid}"
    port = free_port()
    names = {"LINKY_READINGS_TOPIC": topic, "LINKY_CONTRACTS_TOPIC": f"linky.contracts.{uid}",
             "LINKY_GATEWAYS_TOPIC": f"linky.gateways.{uid}", "LINKY_ALERT_SETTINGS_TOPIC": f"linky.alert-settings.{uid}",
             "LINKY_TOPIC_PARTITIONS": "2"}  # fmt: skip
    env = worker_env({**stack.kafka_client_env("linky-worker"), **names,
                      "LINKY_APP_ID": f"linky-stream-{uid}", "LINKY_REDIS_URL": redis_worker_url,
                      "LINKY_DATADIR": str(tmp_path / "data"), "LINKY_WEB_PORT": str(port), "LINKY_LOG_FORMAT": "text",
                      "LINKY_GATEWAY_ACCEPT_UNSIGNED": "false", "LINKY_BATTERY_TICK_SECONDS": "1"})  # fmt: skip
    admin_env = worker_env({**stack.kafka_client_env("linky-admin"), **names})
    await create_topics(stack, topic)

    # ---- gateways through the CLI, over SASL_SSL as the admin
    def cli(*argv: str) -> str:
        done = run_cli(admin_env, "gateway", *argv)
        assert done.returncode == 0, done.stderr
        return done.stdout

    keys = tmp_path / "keys"
    keys.mkdir()
    cli("add", "gw-victim", "--pdl", victim, "--pdl", quarantine, "--key-file", str(keys / "victim.key"))
    cli("add", "gw-control", "--pdl", control, "--key-file", str(keys / "control.key"))
    cli("add", "gw-other", "--pdl", other, "--key-file", str(keys / "other.key"))
    cli("add", "gw-stolen", "--pdl", victim, "--key-file", str(keys / "stolen.key"))
    cli("revoke", "gw-stolen")
    shown = json.loads(cli("show", "--json"))
    assert set(shown["gw-victim"]["pdls"]) == {victim, quarantine}
    assert shown["gw-stolen"]["pdls"][victim]["revoked_at"] is not None
    assert "secret" not in json.dumps(shown)
    bad = run_cli(admin_env, "gateway", "add", "bad id!", "--pdl", victim, "--key-file", str(keys / "x"))
    assert bad.returncode == 2 and "gateway id" in bad.stderr

    # ---- contracts: the victim and the control have the same virtual battery
    day = clock.today() - timedelta(days=2)
    start = datetime.combine(day, datetime.min.time(), tzinfo=PARIS)
    admin_cfg = Settings.from_env(admin_env)
    version = version_from_dict({"effective_from": day.isoformat(), "offer": "virtual_battery",
                                 "battery": {"fees_eur_per_kwh": {"HP": "0.1122", "HC": "0.0945"}}})
    await ensure_contracts_topic(admin_cfg)
    for pdl in (victim, control):
        await write_contract(admin_cfg, add_version(Contract(pdl=pdl), version, today=day))

    days = {pdl: day_of(pdl, start, exporting=True) for pdl in (victim, control, other)}
    redis = aioredis.from_url(redis_url)
    pubsub = redis.pubsub(ignore_subscribe_messages=True)
    await pubsub.psubscribe(f"linky:{prefix}*:alerts")
    alerts: list[dict[str, Any]] = []

    async def collect() -> None:
        while True:
            msg = await pubsub.get_message(timeout=1.0)
            if msg is not None:
                alerts.append(json.loads(msg["data"]))

    collector = asyncio.create_task(collect())
    worker = Worker(env, tmp_path / "worker.log")
    worker.start()
    http = aiohttp.ClientSession()

    async def get(path: str) -> tuple[int, Any]:
        try:
            async with http.get(f"http://127.0.0.1:{port}{path}") as response:
                body = await response.text()
                try:
                    return response.status, json.loads(body)
                except ValueError:
                    return response.status, body
        except aiohttp.ClientError:
            return 0, None

    async def rejected(reason: str) -> float:
        try:
            async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
                text = await response.text()
        except aiohttp.ClientError:
            return 0.0
        line = f'linky_stream_readings_rejected_total{{reason="{reason}"}} '
        return sum(float(x[len(line):]) for x in text.splitlines() if x.startswith(line))

    async def until(predicate: Any, what: str, timeout: float = 120.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not await predicate():
            assert worker.proc is not None and worker.proc.poll() is None, f"worker exited:\n{worker.tail()}"
            assert asyncio.get_running_loop().time() < deadline, f"timed out: {what}\n{worker.tail(80)}"
            await asyncio.sleep(0.3)

    async def day_totals(pdl: str) -> tuple[int, int] | None:
        status, body = await get(f"/pdl/{pdl}/consumption?granularity=day&from={day.isoformat()}"
                                 f"&to={(day + timedelta(days=1)).isoformat()}")
        if status != 200 or not body["buckets"]:
            return None
        return body["buckets"][0]["import_wh"], body["buckets"][0]["export_wh"]

    async def live_time(pdl: str) -> str | None:
        status, body = await get(f"/pdl/{pdl}/live")
        return body.get("time") if status == 200 else None

    async def registry_loaded() -> bool:
        for pdl in (victim, control, other, quarantine):
            status, doc = await get(f"/pdl/{pdl}/quarantine")
            if status != 200 or not isinstance(doc, dict) or not doc["gateways"]:
                return False
        return True

    attacker = AIOKafkaProducer(**kafka(stack, "linky-edge"), acks="all")
    await attacker.start()
    try:
        # a worker's very first start: the registry and the readings are two topics with no order
        # between them; the edge publishes at once, and the worker must judge no reading before it
        # has loaded the registry (agents/gateways.py wait_for_registry): a reading judged too
        # early would be refused as gateway_not_provisioned, counted below (exactly 1 expected)
        # ---- phase 1: the first half of the day through the edge (key k1)
        half = 48
        for pdl, name in ((victim, "victim"), (control, "control"), (other, "other")):
            await publish_all(edge_publisher(stack, topic, keys / f"{name}.key", tmp_path / f"spool-{name}-1"),
                              days[pdl][0][: half + 1])
        await until(lambda: _eq(live_time(victim), days[victim][0][half]["time"]), "phase 1 folded")
        await until(registry_loaded, "gateway registry listed")
        assert await rejected("gateway_not_provisioned") == 0, "readings judged before the registry was loaded"

        # ---- forgeries against the victim, each dated after its newest reading, plausible in size
        base = days[victim][0][half]
        forged = dict(base, time=(datetime.fromisoformat(base["time"]) + timedelta(minutes=7)).isoformat(),
                      export_wh=base["export_wh"] + 900, import_wh=base["import_wh"])
        value = json.dumps(forged, separators=(",", ":")).encode()
        other_key = parse_key_file((keys / "other.key").read_text())
        stolen_key = parse_key_file((keys / "stolen.key").read_text())
        victim_key = parse_key_file((keys / "victim.key").read_text())
        honest = json.dumps(dict(forged, export_wh=base["export_wh"]), separators=(",", ":")).encode()
        sends = [
            (value, sign_headers(other_key, value)),  # a valid gateway, not provisioned for this PDL
            (value, sign_headers(victim_key, honest)),  # tampered: the signature of other bytes
            (value, sign_headers(stolen_key, value)),  # a revoked gateway
            (value, None),  # unsigned (roll-out setting off)
            (value, [(n, v) for n, v in sign_headers(victim_key, value) if n != "linky-sig"]),  # signature dropped
            (json.dumps(dict(forged, pdl=other)).encode(), sign_headers(victim_key, json.dumps(dict(forged, pdl=other)).encode())),
        ]
        for v, headers in sends:
            await attacker.send_and_wait(topic, v, key=victim.encode(), headers=headers)

        # ---- rotation: a new key for gw-victim; records signed with the old key still arrive after it
        shutil.copy(keys / "victim.key", keys / "victim-old.key")
        cli("rotate", "gw-victim", "--key-file", str(keys / "victim.key"), "--window-hours", "24")
        assert parse_key_file((keys / "victim.key").read_text()).key_id != victim_key.key_id
        in_flight = 60
        await publish_all(edge_publisher(stack, topic, keys / "victim-old.key", tmp_path / "spool-victim-2"),
                          days[victim][0][half + 1: in_flight])
        await publish_all(edge_publisher(stack, topic, keys / "victim.key", tmp_path / "spool-victim-3"),
                          days[victim][0][in_flight:])
        for pdl, name in ((control, "control"), (other, "other")):
            await publish_all(edge_publisher(stack, topic, keys / f"{name}.key", tmp_path / f"spool-{name}-2"),
                              days[pdl][0][half + 1:])

        # ---- a replayed old reading: an early record of the victim, bytes and headers as captured
        records = await read_records(stack, topic)
        early = next(r for r in records if r.key == victim.encode() and r.headers
                     and json.loads(r.value)["time"] == days[victim][0][2]["time"])
        await attacker.send_and_wait(topic, early.value, key=early.key, headers=list(early.headers))

        # ---- impossible readings of a consumer PDL (no contract, STGE consumer), gw-victim's key
        q = quarantine_sequence(quarantine, start)
        await publish_all(edge_publisher(stack, topic, keys / "victim.key", tmp_path / "spool-q"), [r for r, _ in q])

        last_victim = days[victim][0][-1]["time"]
        await until(lambda: _eq(live_time(victim), last_victim), "victim's day folded")
        await until(lambda: _eq(live_time(control), days[control][0][-1]["time"]), "control's day folded")
        await until(lambda: _eq(live_time(quarantine), q[-1][0]["time"]), "quarantine PDL folded")
        await until(lambda: _ge(rejected("replay"), 1), "replay counted")

        # the metrics: each forgery refused and counted under its reason
        for reason, count in (("gateway_not_provisioned", 1), ("bad_signature", 2), ("gateway_revoked", 1),
                              ("unsigned", 1), ("pdl_mismatch", 1), ("replay", 1), ("key_expired", 0),
                              ("impossible_growth", 2), ("injection_on_consumer", 1), ("future_reading", 1)):
            assert await rejected(reason) == count, (reason, await rejected(reason))

        # totals and battery unchanged against the ground truth (and the untouched control PDL)
        for pdl in (victim, control, other):
            assert await day_totals(pdl) == (days[pdl][1], days[pdl][2]), pdl
        status_v, battery_v = await get(f"/pdl/{victim}/battery")
        status_c, battery_c = await get(f"/pdl/{control}/battery")
        assert status_v == status_c == 200
        assert _strip(battery_v, victim) == _strip(battery_c, control)

        # the rotation: both key ids signed folded readings of the victim
        key_ids = {dict(r.headers).get(HEADER_KEY_ID) for r in records if r.key == victim.encode() and r.headers}
        assert len({k for k in key_ids if k}) >= 2, key_ids

        # quarantine: listed, alerted, not counted; the plausible ones resumed
        assert await day_totals(quarantine) == (EXPECTED_Q_IMPORT, 0)
        status, doc = await get(f"/pdl/{quarantine}/quarantine")
        assert status == 200
        assert [e["reason"] for e in reversed(doc["quarantined"])] == [
            "impossible_growth", "impossible_growth", "injection_on_consumer", "future_reading"]
        assert doc["rebaselined_meter"] and "~rebaselined@" in doc["rebaselined_meter"]
        status, doc = await get(f"/pdl/{victim}/quarantine")
        assert status == 200 and {e["reason"] for e in doc["rejected"]} == {
            "gateway_not_provisioned", "bad_signature", "gateway_revoked", "unsigned", "pdl_mismatch", "replay"}
        assert "secret" not in json.dumps(doc)
        # the supplier's review list: every PDL of the worker, newest first
        status, review = await get("/quarantine")
        assert status == 200
        assert sorted(e["reason"] for e in review["quarantined"] if e["pdl"] == quarantine) == sorted(
            ["impossible_growth", "impossible_growth", "injection_on_consumer", "future_reading"])
        assert {e["pdl"] for e in review["rejected"]} >= {victim} and review["totals"]["rejected"] >= 6
        stamps = [e["received_at"] for e in review["quarantined"]]
        assert stamps == sorted(stamps, reverse=True)
        assert not {e["pdl"] for e in review["quarantined"] + review["rejected"]} & {control, other}

        async def alerted() -> bool:
            kinds = {(a["pdl"], a["kind"], a["action"]) for a in alerts}
            return {(victim, "gateway_untrusted", "open"), (quarantine, "reading_quarantined", "open")} <= kinds

        await until(alerted, "trust alerts on Redis", timeout=30)
        assert not any(a["pdl"] in (control, other) and a["kind"] in ("gateway_untrusted", "reading_quarantined")
                       for a in alerts)
        log = (tmp_path / "worker.log").read_text()
        for key in (victim_key, other_key, stolen_key):
            assert _b64(key) not in log
    finally:
        await attacker.stop()
        collector.cancel()
        await pubsub.aclose()
        await redis.aclose()
        await http.close()
        worker.stop()


def quarantine_sequence(pdl: str, start: datetime) -> list[tuple[dict[str, Any], str]]:
    """Readings of a consumer-only PDL, each with what the trust checks must do with it."""
    def r(step: int, imp: int, exp: int = 0) -> dict[str, Any]:
        return reading(pdl, start + step * STEP, imp, exp, producer=False)

    future = reading(pdl, clock.now() + timedelta(days=2), 610_500, 0, producer=False)
    return [
        (r(0, 10_000), "fold"), (r(1, 10_050), "fold"), (r(2, 10_100), "fold"),
        (r(3, 110_100), "impossible_growth"),  # +100 kWh in 15 min at 9 kVA: a spike
        (r(4, 10_200), "fold"),  # plausible against the baseline: +100 Wh in 30 min
        (r(5, 10_250), "fold"),
        (r(6, 610_250), "impossible_growth"),  # the index jumps and stays there...
        (r(7, 610_300), "rebaseline"),  # ...plausible after the jump: a new baseline, no energy across
        (r(8, 610_350), "fold"),
        (r(9, 610_400, 800), "injection_on_consumer"),  # export on a consumer-only PDL
        (r(10, 610_450, 800), "rebaseline"),  # plausible after it: re-baselined, the 800 Wh never counted
        (future, "future_reading"),
        (r(12, 610_550, 800), "fold"),
    ]


# 10_000 -> 10_100 (100), 10_100 -> 10_200 (100), -> 10_250 (50), re-baseline at 610_300,
# -> 610_350 (50), re-baseline at 610_450, -> 610_550 (100)
EXPECTED_Q_IMPORT = 100 + 100 + 50 + 50 + 100


async def _eq(value: Any, expected: Any) -> bool:
    return await value == expected


async def _ge(value: Any, expected: float) -> bool:
    return await value >= expected


def _strip(doc: dict[str, Any], pdl: str) -> str:
    return json.dumps(doc, sort_keys=True).replace(pdl, "PDL")


def _b64(key: KeyFile) -> str:
    return json.loads(key.to_json())["secret"]
