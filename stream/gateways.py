"""Kafka side of the compacted gateways registry topic (default ``linky.gateways``).

One record per change, key = PDL (UTF-8), value = the PDL's whole registry document
(tables/trust.py ``encode_registry``): the gateways allowed to sign its readings, their HMAC keys,
revocations. Keyed and partitioned like the contracts (stream/contracts.py), so the worker finds a
PDL's document in the partition of its readings; created compacted when missing.

The topic holds the gateways' secrets: only the worker users and the admin may read it (the
stack's ACLs, docs/security.md). Read-modify-write is not transactional (as for contracts).
"""

from __future__ import annotations

from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from stream.contracts import ensure_pdl_document_topic, latest_document
from stream.kafka_security import client_kwargs
from stream.settings import Settings
from tables.trust import PdlGateways, decode_registry, encode_registry


async def ensure_gateways_topic(cfg: Settings) -> bool:
    return await ensure_pdl_document_topic(cfg, cfg.gateways_topic)


async def read_all(cfg: Settings) -> dict[str, PdlGateways]:
    """Every PDL's latest document (tombstones remove), reading the whole topic."""
    consumer = AIOKafkaConsumer(bootstrap_servers=cfg.kafka_bootstrap, enable_auto_commit=False,
                                isolation_level="read_committed", client_id="linky-gateways-reader",
                                **client_kwargs(cfg))
    await consumer.start()
    docs: dict[str, PdlGateways] = {}
    try:
        tps = [TopicPartition(cfg.gateways_topic, p) for p in range(cfg.topic_partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        for tp in tps:
            while await consumer.position(tp) < ends[tp]:
                batch = await consumer.getmany(tp, timeout_ms=1000)
                for record in batch.get(tp, []):
                    if record.key is None:
                        continue
                    pdl = record.key.decode()
                    if record.value is None:
                        docs.pop(pdl, None)
                    else:
                        docs[pdl] = decode_registry(record.value, pdl=pdl)
        return docs
    finally:
        await consumer.stop()


async def read_registry(cfg: Settings, pdl: str) -> PdlGateways | None:
    latest = await latest_document(cfg, cfg.gateways_topic, pdl, client_id="linky-gateways-reader")
    return None if latest is None else decode_registry(latest, pdl=pdl)


async def write_registries(cfg: Settings, docs: list[PdlGateways]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=cfg.kafka_bootstrap, acks="all", enable_idempotence=True,
                                client_id="linky-gateways-writer", **client_kwargs(cfg))
    await producer.start()
    try:
        for doc in docs:
            await producer.send_and_wait(cfg.gateways_topic, encode_registry(doc), key=doc.pdl.encode())
    finally:
        await producer.stop()


async def update_registries(cfg: Settings, pdls: list[str],
                            change: Callable[[PdlGateways], PdlGateways]) -> list[PdlGateways]:
    """Apply ``change`` to each PDL's document (empty if none) and write them all, or none when
    ``change`` raises (``TrustError``) for one of them."""
    await ensure_gateways_topic(cfg)
    updated = []
    for pdl in pdls:
        current = await read_registry(cfg, pdl) or PdlGateways(pdl)
        updated.append(change(current))
    await write_registries(cfg, updated)
    return updated
