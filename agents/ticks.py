"""Internal ticks topic: how timers change table state without writing tables themselves.

Faust refuses table writes outside stream iteration (../shared/stack.md 1.2), so a timer that
finds a PDL with work to do (a month to close, a silent meter) sends ``{"now"}`` keyed by the
PDL to the PDL's own partition of ``{app_id}-battery-ticks``; agents/battery.py handles it like
any event (same partition, so the same table partition). Duplicate ticks are harmless:
the handlers are idempotent (a second close or silence check finds nothing to do).
"""

from __future__ import annotations

import json
from datetime import datetime

from stream.app import app, settings

ticks_topic = app.topic(
    f"{settings.app_id}-battery-ticks",
    key_type=bytes,
    value_type=bytes,
    partitions=settings.topic_partitions,
    replicas=settings.topic_replication,
    retention=3600.0,  # seconds; a tick older than that is useless anyway
    internal=True,  # declared (created) by faust, co-partitioned with the readings
)


async def send_tick(pdl: str, partition: int, now: datetime) -> None:
    """Queue a tick for ``pdl`` on its partition."""
    value = json.dumps({"now": now.isoformat()}).encode()
    await ticks_topic.send(key=pdl.encode(), value=value, partition=partition)
