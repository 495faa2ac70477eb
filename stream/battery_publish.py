"""Redis output of the battery, surplus and alerts channels through the stream's one publisher
(stream/state.py ``publisher``, stream/redis_publisher.py): PUBLISH on the channel and SET the
same-name snapshot key. ``publish`` is synchronous and O(1) (a bounded in-memory queue drained
by the publisher's task): the agent never waits for Redis. Redis down or slow drops and counts
(``linky_redis_publish_failures_total``), and when Redis returns the snapshot keys are rewritten
from the tables (``add_snapshot_source``, registered by agents/battery.py).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from stream.redis_publisher import SnapshotSource
from stream.state import publisher


def publish(
    channel: str, payload: Mapping[str, Any] | bytes, *, event_time: float | None = None, received_at: float | None = None
) -> bool:
    """Queue ``payload`` for ``channel`` (and its snapshot key); never blocks, never raises.

    ``event_time`` (epoch seconds of the reading) feeds the processing-latency histogram,
    ``received_at`` (the edge's decode time) the publish-latency one.
    Returns False when the payload was dropped (Redis down, queue full)."""
    return publisher.publish(channel, payload, event_time=event_time, received_at=received_at)


def publish_latest(
    channel: str,
    payload: Mapping[str, Any] | bytes | Callable[[], Mapping[str, Any] | bytes],
    *,
    event_time: float | None = None,
    received_at: float | None = None,
) -> None:
    """Queue the channel's current view (a payload or its render): within the readings agent's
    coalescing scope, only the channel's last one is rendered and queued
    (stream/redis_publisher.py ``publish_latest``)."""
    publisher.publish_latest(channel, payload, event_time=event_time, received_at=received_at)


def add_snapshot_source(source: SnapshotSource) -> None:
    """Rewrite these snapshot keys from the tables when Redis comes back."""
    publisher.add_snapshot_source(source)
