"""Contracts agent: the compacted ``linky.contracts`` topic into a table of contract documents.

Table ``contracts``: key = PDL (bytes), value = the document as published (JSON bytes,
stream/contracts.py). The topic is co-partitioned with the readings (same partition count, both
keyed by PDL with the default partitioner), so the battery and alerts agents find a PDL's
contract in the table partition of its readings. Faust declares the topic (compacted) if it is
missing, as ``stream.contracts.ensure_contracts_topic`` does for the CLI.

Other agents subscribe to changes with ``on_contract_change`` (the battery agent re-anchors and
republishes); listeners run inside stream iteration, so they may write their own tables.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from prometheus_client import Counter

from stream.app import app, pdl_table, settings
from stream.contracts import decode_contract
from tables.contracts import Contract, ContractError

log = logging.getLogger(__name__)

ContractListener = Callable[[str, "Contract | None", int], Awaitable[None]]

contracts_topic = app.topic(
    settings.contracts_topic,
    key_type=bytes,
    value_type=bytes,
    partitions=settings.topic_partitions,
    replicas=settings.topic_replication,
    compacting=True,
    internal=True,  # faust declares (creates) it if missing: brokers do not auto-create topics
)
contracts = pdl_table("contracts", read_mostly=True)

CONTRACTS_REJECTED = Counter(
    "linky_contract_records_rejected_total", "Contract records ignored because they are invalid"
)
CONTRACTS_APPLIED = Counter("linky_contract_records_applied_total", "Contract records stored in the table")

UNRESOLVED: object = object()  # "not looked up yet": a handler given it looks the contract up itself
_listeners: list[ContractListener] = []
_parsed: dict[str, tuple[bytes, Contract]] = {}  # per-process parse cache: pdl -> (raw, parsed)


def on_contract_change(listener: ContractListener) -> ContractListener:
    """Register ``listener(pdl, contract or None, partition)``, awaited after each change."""
    _listeners.append(listener)
    return listener


def resolve(pdl: str, given: Contract | None | object) -> Contract | None:
    """``given`` (a contract, or None: no contract) unless it is ``UNRESOLVED``: then the table's."""
    return contract_for(pdl) if given is UNRESOLVED else given  # type: ignore[return-value]


def contract_for(pdl: str) -> Contract | None:
    """The PDL's contract from the table (inside stream iteration: the event's partition)."""
    raw = contracts.get(pdl.encode())
    if raw is None:
        return None
    cached = _parsed.get(pdl)
    if cached is not None and cached[0] == raw:
        return cached[1]
    try:
        contract = decode_contract(raw, pdl=pdl)
    except ContractError:  # stored documents were validated; only a schema change gets here
        log.exception("stored contract of %s is invalid", pdl)
        return None
    _parsed[pdl] = (raw, contract)
    return contract


@app.agent(contracts_topic)
async def contracts_agent(stream):  # type: ignore[no-untyped-def]
    """Store each valid document (a tombstone deletes), then tell the listeners."""
    async for event in stream.events():
        if event.key is None:
            CONTRACTS_REJECTED.inc()
            continue
        pdl = event.key.decode()
        contract: Contract | None = None
        if event.value is None:
            contracts.pop(event.key, None)
            _parsed.pop(pdl, None)
        else:
            try:
                contract = decode_contract(event.value, pdl=pdl)
            except ContractError as exc:
                CONTRACTS_REJECTED.inc()
                log.warning("contract record for %s ignored: %s", pdl, exc)
                continue
            contracts[event.key] = event.value
            _parsed[pdl] = (event.value, contract)
        CONTRACTS_APPLIED.inc()
        for listener in _listeners:
            await listener(pdl, contract, event.message.partition)
