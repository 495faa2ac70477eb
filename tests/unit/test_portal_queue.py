"""portal/hub.py ClientQueue: snapshots first, updates the snapshot already holds skipped, a slow
browser's queue bounded to the newest payload per channel (drops counted)."""

from __future__ import annotations

from portal.hub import ClientQueue


async def drain(q: ClientQueue) -> list[tuple[str, bytes]]:
    out = []
    while (e := await q.get(0.01)) is not None:
        out.append(e)
    return out


async def test_priming_skips_updates_up_to_the_snapshot_and_keeps_newer_ones() -> None:
    q = ClientQueue("p", maxsize=64)
    for data in (b"l1", b"l2", b"l3"):
        q.put("live", data)
    q.put("conso", b"c1")
    q.prime({"live": b"l2", "conso": b"c0", "battery": None, "surplus": None, "alerts": None})
    events = await drain(q)
    assert events[:2] == [("live", b"l2"), ("conso", b"c0")]
    assert events[2][0] == "ready"
    assert events[3:] == [("live", b"l3"), ("conso", b"c1")]  # l1, l2 were in the snapshot already


async def test_a_slow_browser_keeps_the_newest_per_channel_and_counts_drops() -> None:
    q = ClientQueue("p", maxsize=10)
    q.prime({})
    await drain(q)
    for i in range(30):
        q.put("live", b"l%d" % i)
        if i % 3 == 0:
            q.put("conso", b"c%d" % i)
    assert len(q) <= 10
    events = await drain(q)
    assert events[-1] in {("live", b"l29"), ("conso", b"c27")}
    lives = [int(d[1:]) for n, d in events if n == "live"]
    assert lives == sorted(lives) and lives[-1] == 29  # in order, the newest kept
    assert q.dropped == 30 + 10 - len(events)


async def test_control_events_bypass_priming() -> None:
    q = ClientQueue("p")
    q.put_control("stale", b"{}")
    q.put("live", b"l1")
    assert await drain(q) == [("stale", b"{}")]  # the update waits for the snapshots
    q.prime({"live": None})
    assert [n for n, _ in await drain(q)] == ["ready", "live"]
