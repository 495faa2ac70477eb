"""Brute-force protection: after ``attempts`` failed authentications from one client address
within ``window_seconds``, the address is refused for ``lock_seconds`` (defaults 3 and 3 hours,
the GEG rule). Times come from the product clock (``stream.clock``). In memory, per process; at
most ``max_addresses`` addresses are tracked (the oldest forgotten first)."""

from __future__ import annotations

from collections import OrderedDict, deque

from portal import metrics
from stream import clock


class Lockout:
    def __init__(self, attempts: int = 3, window_seconds: float = 3600.0, lock_seconds: float = 3 * 3600.0,
                 max_addresses: int = 100_000) -> None:
        if attempts < 1:
            raise ValueError("lockout attempts must be at least 1")
        self.attempts = attempts
        self.window = window_seconds
        self.lock = lock_seconds
        self.max_addresses = max_addresses
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._locked: dict[str, float] = {}

    def retry_after(self, address: str) -> float | None:
        """Seconds until ``address`` may try again, or None when it is not locked."""
        until = self._locked.get(address)
        if until is None:
            return None
        left = until - clock.time()
        if left <= 0:
            del self._locked[address]
            return None
        return left

    def failure(self, address: str) -> bool:
        """Count a failed authentication; True when it locks the address."""
        now = clock.time()
        times = self._failures.pop(address, None) or deque()
        times.append(now)
        while times and times[0] <= now - self.window:
            times.popleft()
        if len(times) >= self.attempts:
            self._locked[address] = now + self.lock
            metrics.LOCKOUTS.inc()
            self._prune(now)
            return True
        self._failures[address] = times
        while len(self._failures) > self.max_addresses:
            self._failures.popitem(last=False)
        return False

    def success(self, address: str) -> None:
        """A successful authentication clears that address's failures (only that address's)."""
        self._failures.pop(address, None)

    def _prune(self, now: float) -> None:
        if len(self._locked) > self.max_addresses:
            for addr in [a for a, until in self._locked.items() if until <= now]:
                del self._locked[addr]
