"""The contracts topic and the ``linky-stream contract`` CLI against the real broker."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from stream import clock
from stream.contracts import ContractsTopicError, ensure_contracts_topic, read_contract
from stream.settings import Settings
from tests.integration.battery_world import run_cli, worker_env

pytestmark = pytest.mark.integration
PDL = "12345678901234"


async def test_cli_creates_the_compacted_topic_and_keeps_every_version(kafka_bootstrap: str, unique_name) -> None:
    topic = unique_name("contracts")
    env = worker_env({"LINKY_KAFKA_BOOTSTRAP": kafka_bootstrap, "LINKY_CONTRACTS_TOPIC": topic,
                      "LINKY_TOPIC_PARTITIONS": "3"})  # fmt: skip

    def cli(*argv: str):  # noqa: ANN202
        return run_cli(env, "contract", *argv)

    # Dates relative to the product's clock (the CLI's "today"): next year, and the past.
    today = clock.today()
    y = today.year + 1
    anchor_day, yesterday = (today - timedelta(days=61)).isoformat(), (today - timedelta(days=1)).isoformat()
    done = cli("set", PDL, "--from", f"{y}-01-01", "--offer", "virtual_battery", "--capacity-kwh", "10",
               "--settlement", "monthly", "--debit-priority", "offpeak_first", "--fee", "HC=0.0945")
    assert done.returncode == 0, done.stderr
    assert cli("set", PDL, "--from", f"{y}-06-01", "--offer", "surplus_resale", "--rate", "0.06").returncode == 0
    assert cli("anchor", PDL, "--date", anchor_day, "--balance-kwh", "451", "--note", "inv 9").returncode == 0
    past = cli("set", PDL, "--from", yesterday, "--offer", "none")
    assert past.returncode == 2 and "never applies retroactively" in past.stderr
    invalid = cli("set", PDL, "--from", f"{y}-02-01", "--offer", "virtual_battery", "--credit-ratio", "2")
    assert invalid.returncode == 2 and "credit_ratio" in invalid.stderr

    cfg = Settings.from_env(env)
    contract = await read_contract(cfg, PDL)
    assert contract is not None
    assert [v.effective_from.isoformat() for v in contract.versions] == [f"{y}-01-01", f"{y}-06-01"]
    assert [v.offer.value for v in contract.versions] == ["virtual_battery", "surplus_resale"]
    assert contract.versions[0].battery is not None and contract.versions[0].battery.capacity_wh == 10_000
    assert [(a.date.isoformat(), a.balance_wh, a.note) for a in contract.anchors] == [(anchor_day, 451_000, "inv 9")]

    shown = cli("show", PDL, "--json")
    assert shown.returncode == 0 and json.loads(shown.stdout)["versions"][1]["resale"] == {"rate_eur_per_kwh": "0.06"}
    text = cli("show", PDL)
    assert f"+ {y}-01-01  virtual_battery capacity 10000 Wh" in text.stdout
    assert cli("show", "99999999999999").returncode == 2

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
        assert len(described[0]["partitions"]) == 3
        assert await ensure_contracts_topic(cfg) is False  # exists: checked, not re-created
    finally:
        await admin.close()


async def test_an_existing_topic_that_breaks_co_partitioning_is_refused(kafka_bootstrap: str, unique_name) -> None:
    wrong_partitions, not_compacted = unique_name("contracts"), unique_name("contracts")
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([
            NewTopic(wrong_partitions, num_partitions=2, replication_factor=1,
                     topic_configs={"cleanup.policy": "compact"}),
            NewTopic(not_compacted, num_partitions=4, replication_factor=1),
        ])  # fmt: skip
    finally:
        await admin.close()
    with pytest.raises(ContractsTopicError, match="co-partitioned"):
        await ensure_contracts_topic(Settings(kafka_bootstrap=kafka_bootstrap, contracts_topic=wrong_partitions,
                                              topic_partitions=4))  # fmt: skip
    with pytest.raises(ContractsTopicError, match="compacted"):
        await ensure_contracts_topic(Settings(kafka_bootstrap=kafka_bootstrap, contracts_topic=not_compacted,
                                              topic_partitions=4))  # fmt: skip
