"""Kafka side of the compacted contracts topic (default ``linky.contracts``).

One record per change, key = PDL (UTF-8), value = the PDL's whole contract document as JSON
(``tables.contracts.contract_to_dict``): compaction keeps only the latest value per key, so each
value carries every version and anchor. A null value (tombstone) deletes the PDL's contract.

Partitioning: the topic has as many partitions as ``linky.readings`` (``topic_partitions``) and
both are keyed by PDL with Kafka's default partitioner (murmur2, the same in aiokafka, faust and
the Java client), so a PDL's contract and readings share a partition number. The faust worker
relies on it: the battery agent reads the contract from the table partition of the reading.

Brokers run with ``auto.create.topics.enable=false``: ``ensure_contracts_topic`` creates the topic
(compacted) if it is missing and refuses one with the wrong partition count or cleanup policy.

Read-modify-write (``update_contract``) is not transactional: two operators editing the same PDL
at the same instant can lose one edit. The CLI prints the document it wrote; ``show`` re-reads it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.partitioner import DefaultPartitioner

from stream import clock
from stream.kafka_security import client_kwargs
from stream.settings import Settings
from tables.calendar import PARIS
from tables.contracts import Contract, contract_from_dict, contract_to_dict

UNKNOWN_TOPIC = 3
TOPIC_ALREADY_EXISTS = 36
METADATA_RETRIES, METADATA_RETRY_SECONDS = 50, 0.2


class ContractsTopicError(RuntimeError):
    """The contracts topic cannot be used as it is (wrong partitions or cleanup policy)."""


async def ensure_contracts_topic(cfg: Settings) -> bool:
    """Create the compacted contracts topic if missing; True if this call created it.

    Partitions = ``cfg.topic_partitions`` (co-partitioned with the readings), replication =
    ``cfg.topic_replication`` (as the readings topic). An existing topic is checked, never altered.
    """
    return await ensure_pdl_document_topic(cfg, cfg.contracts_topic)


async def ensure_pdl_document_topic(cfg: Settings, name: str) -> bool:
    """Create a compacted, PDL-keyed topic co-partitioned with the readings if missing (contracts,
    alert settings); True if this call created it. An existing topic is checked, never altered."""
    admin = AIOKafkaAdminClient(bootstrap_servers=cfg.kafka_bootstrap, client_id="linky-contracts-admin",
                                **client_kwargs(cfg))
    await admin.start()
    try:
        created = False
        if not await _topic_partitions(admin, name):
            topic = NewTopic(
                name,
                num_partitions=cfg.topic_partitions,
                replication_factor=cfg.topic_replication,
                topic_configs={"cleanup.policy": "compact"},
            )
            response = await admin.create_topics([topic])
            for _name, code, message in _topic_errors(response):
                if code not in (0, TOPIC_ALREADY_EXISTS):
                    raise ContractsTopicError(f"creating {name}: error {code} {message}")
                created = created or code == 0
        await _check_topic(admin, cfg, name)
        return created
    finally:
        await admin.close()


def partition_for(pdl: str, partitions: int) -> int:
    """The partition of a PDL's records (Kafka's default murmur2 partitioner on the key)."""
    all_partitions = list(range(partitions))
    return DefaultPartitioner()(pdl.encode(), all_partitions, all_partitions)


async def read_contract(cfg: Settings, pdl: str) -> Contract | None:
    """The latest contract document of ``pdl`` on the topic, or None (never set, or deleted)."""
    latest = await latest_document(cfg, cfg.contracts_topic, pdl, client_id="linky-contracts-reader")
    return None if latest is None else decode_contract(latest, pdl=pdl)


async def latest_document(cfg: Settings, topic: str, pdl: str, *, client_id: str) -> bytes | None:
    """The last value keyed ``pdl`` on a compacted PDL-keyed topic (contracts, gateways): its
    partition read from the beginning to its end offset; None if never set or deleted."""
    tp = TopicPartition(topic, partition_for(pdl, cfg.topic_partitions))
    consumer = AIOKafkaConsumer(
        bootstrap_servers=cfg.kafka_bootstrap,
        enable_auto_commit=False,
        isolation_level="read_committed",
        client_id=client_id,
        **client_kwargs(cfg),
    )
    await consumer.start()
    try:
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        latest: bytes | None = None
        while await consumer.position(tp) < end:
            batch = await consumer.getmany(tp, timeout_ms=1000)
            for record in batch.get(tp, []):
                if record.key == pdl.encode():
                    latest = record.value
        return latest
    finally:
        await consumer.stop()


async def write_contract(cfg: Settings, contract: Contract) -> None:
    """Publish ``contract`` as the PDL's document (acks=all, idempotent producer)."""
    producer = AIOKafkaProducer(
        bootstrap_servers=cfg.kafka_bootstrap, acks="all", enable_idempotence=True, client_id="linky-contracts-writer",
        **client_kwargs(cfg),
    )
    await producer.start()
    try:
        await producer.send_and_wait(cfg.contracts_topic, encode_contract(contract), key=contract.pdl.encode())
    finally:
        await producer.stop()


async def update_contract(cfg: Settings, pdl: str, change: Callable[[Contract], Contract]) -> Contract:
    """Read the PDL's document (empty if none), apply ``change``, write and return the result.

    ``change`` raises ``ContractError`` to refuse the edit; nothing is written then.
    """
    await ensure_contracts_topic(cfg)
    current = await read_contract(cfg, pdl) or Contract(pdl=pdl)
    updated = change(current)
    await write_contract(cfg, updated)
    return updated


def encode_contract(contract: Contract) -> bytes:
    """The record value of a contract document (compact JSON, UTF-8)."""
    return json.dumps(contract_to_dict(contract), separators=(",", ":"), sort_keys=True).encode()


def decode_contract(value: bytes, *, pdl: str | None = None) -> Contract:
    """Parse a record value; ``ContractError`` if invalid or if its PDL is not the record key's."""
    from tables.contracts import ContractError

    try:
        data = json.loads(value)
    except ValueError as exc:
        raise ContractError(f"contract record is not JSON: {exc}") from None
    contract = contract_from_dict(data)
    if pdl is not None and contract.pdl != pdl:
        raise ContractError(f"pdl: the document is for {contract.pdl!r} but the record key is {pdl!r}")
    return contract


def today_in_paris(now: datetime | None = None) -> date:
    """Today's Europe/Paris date (the reference for "never retroactive")."""
    return (now or clock.now()).astimezone(PARIS).date()


# --------------------------------------------------------------------------- helpers


async def topic_partitions(admin: AIOKafkaAdminClient, topics: list[str]) -> dict[str, int]:
    """Partitions of each of ``topics`` that exists (one metadata request)."""
    described = await admin.describe_topics(topics)
    return {d["topic"]: len(d["partitions"]) for d in described if not d.get("error_code") and d.get("partitions")}


async def _topic_partitions(admin: AIOKafkaAdminClient, topic: str) -> int:
    return (await topic_partitions(admin, [topic])).get(topic, 0)


async def _check_topic(admin: AIOKafkaAdminClient, cfg: Settings, name: str) -> None:
    partitions = await _topic_partitions(admin, name)
    for _ in range(METADATA_RETRIES):  # a topic just created takes a moment to show in metadata
        if partitions:
            break
        await asyncio.sleep(METADATA_RETRY_SECONDS)
        partitions = await _topic_partitions(admin, name)
    if partitions != cfg.topic_partitions:
        raise ContractsTopicError(
            f"{name} has {partitions} partitions but LINKY_TOPIC_PARTITIONS is "
            f"{cfg.topic_partitions}: contracts must be co-partitioned with the readings"
        )
    resource = ConfigResource(ConfigResourceType.TOPIC, name, {"cleanup.policy": None})
    responses = await admin.describe_configs([resource])
    policy = None
    for response in responses:
        for res in response.to_object()["resources"]:
            for entry in res["config_entries"]:
                if entry["config_names"] == "cleanup.policy":
                    policy = entry["config_value"]
    if policy is None or "compact" not in policy.split(","):
        raise ContractsTopicError(
            f"{name} has cleanup.policy={policy!r}: it must be compacted (one document per PDL)"
        )


def _topic_errors(response: Any) -> list[tuple[str, int, str | None]]:
    return [(t[0], t[1], t[2] if len(t) > 2 else None) for t in response.topic_errors]
