"""The worker's asyncio event loop: uvloop (libuv) by default, the standard library's on request.

``LINKY_EVENT_LOOP`` (``uvloop``, the default, or ``asyncio``). faust runs everything of a worker
on one event loop: the Kafka fetches and changelog sends (aiokafka), the Redis publisher, the
write-back flushes, the timers, the HTTP server. uvloop is the loop faust itself offers
(``faust -L uvloop``, ``FAUST_LOOP=uvloop``); bench/stream_throughput.py measures what it gives
(docs/performance.md "2026-12-06, later").

``stream.app`` calls ``use`` at import, before faust's worker creates its loop, so every way of
starting a worker (``linky-stream worker``, ``faust -A stream.app worker``) gets the same loop.
An explicit ``faust -L``/``FAUST_LOOP`` choice is faust's and wins: it was applied when faust was
imported, and ``use`` then leaves the policy alone.
"""

from __future__ import annotations

import asyncio
import logging
import os

log = logging.getLogger(__name__)

CHOICES = ("uvloop", "asyncio")

__all__ = ["CHOICES", "use", "running"]


def use(name: str) -> str:
    """Install ``name``'s event loop policy for the loops created from now on; returns the loop
    the worker will run (``uvloop`` or ``asyncio``)."""
    if name not in CHOICES:
        raise ValueError(f"LINKY_EVENT_LOOP={name!r}: one of {', '.join(CHOICES)}")
    chosen_by_faust = os.environ.get("FAUST_LOOP") or os.environ.get("F_LOOP")
    if chosen_by_faust:  # ``faust -L ...`` / FAUST_LOOP: faust applied it at import
        return "uvloop" if chosen_by_faust == "uvloop" else "asyncio"
    if name == "uvloop":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    else:
        asyncio.set_event_loop_policy(asyncio.DefaultEventLoopPolicy())
    return name


def running() -> str:
    """The running loop's implementation: ``uvloop`` or ``asyncio`` (call from a coroutine)."""
    return "uvloop" if type(asyncio.get_running_loop()).__module__.startswith("uvloop") else "asyncio"
