"""Redis output of the battery, surplus and alerts agents: PUBLISH on a channel and SET the
same-name snapshot key, in one round trip.

Stop-gap until stream/redis_publisher.py (issue 5) exists; then ``publish`` delegates to it.
Redis down or slow never stops the stream: each publish is bounded by
``redis_timeout_seconds``, failures are dropped and counted, and after a failure publishes are
skipped for ``RETRY_AFTER_SECONDS`` (no timeout per reading while Redis is away). Snapshots are
rewritten by the next change once Redis is back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import redis.asyncio as aioredis
from prometheus_client import Counter

from stream.settings import Settings

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 1.0
PUBLISHED = Counter("linky_battery_redis_published_total", "Battery/surplus/alerts payloads published to Redis")
FAILURES = Counter(
    "linky_battery_redis_failures_total", "Battery/surplus/alerts payloads dropped (Redis down, slow or skipped)"
)


class ChannelPublisher:
    """PUBLISH + SET per payload; never raises."""

    def __init__(self, url: str, timeout_seconds: float) -> None:
        self.url, self.timeout = url, timeout_seconds
        self._client: aioredis.Redis | None = None
        self._down_until = 0.0

    async def publish(self, channel: str, payload: dict[str, Any]) -> bool:
        """Publish ``payload`` (JSON) on ``channel`` and store it under the key ``channel``."""
        if time.monotonic() < self._down_until:
            FAILURES.inc()
            return False
        data = json.dumps(payload, separators=(",", ":"))
        try:
            if self._client is None:
                self._client = aioredis.from_url(
                    self.url, socket_timeout=self.timeout, socket_connect_timeout=self.timeout
                )
            async with asyncio.timeout(self.timeout):
                pipe = self._client.pipeline(transaction=False)
                pipe.set(channel, data)
                pipe.publish(channel, data)
                await pipe.execute()
        except Exception as exc:  # redis/OS/timeout errors alike: drop, count, back off
            FAILURES.inc()
            self._down_until = time.monotonic() + RETRY_AFTER_SECONDS
            log.warning("redis publish on %s dropped: %r", channel, exc)
            await self._reset()
            return False
        PUBLISHED.inc()
        return True

    async def _reset(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                await client.aclose()
            except Exception:
                pass


_publisher: ChannelPublisher | None = None


async def publish(channel: str, payload: dict[str, Any]) -> bool:
    """Publish with the process-wide publisher (settings from ``LINKY_*``)."""
    global _publisher
    if _publisher is None:
        cfg = Settings.from_env()
        _publisher = ChannelPublisher(cfg.redis_url, cfg.redis_timeout_seconds)
    return await _publisher.publish(channel, payload)
