"""Redis output of the battery, surplus and alerts channels through the stream's one publisher
(stream/state.py ``publisher``, stream/redis_publisher.py): PUBLISH on the channel and SET the
same-name snapshot key, never blocking the agent; Redis down or slow drops and counts
(``linky_redis_publish_failures_total``), and when Redis returns the snapshot keys are rewritten
from the tables (``add_snapshot_source``, registered by agents/battery.py).
"""

from __future__ import annotations

from typing import Any

from stream.redis_publisher import SnapshotSource
from stream.state import publisher


async def publish(channel: str, payload: dict[str, Any]) -> bool:
    """Queue ``payload`` for ``channel`` (and its snapshot key); False if it was dropped."""
    return publisher.publish(channel, payload)


def add_snapshot_source(source: SnapshotSource) -> None:
    """Rewrite these snapshot keys from the tables when Redis comes back."""
    publisher.add_snapshot_source(source)
