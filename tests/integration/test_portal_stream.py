"""Worker to browser, all real: readings on Kafka -> the worker subprocess (Redis user
linky-worker) -> redis-server -> the portal process (user linky-portal) -> a browser-like client
that logged in with /login and sends only its session cookie. The browser gets the snapshots,
then each live and conso update of its PDL in order and none of the other PDL's; the forwarded
routes give the worker's own bodies; the other PDL is refused."""

from __future__ import annotations

import asyncio
import json
from datetime import date, datetime
from pathlib import Path

import aiohttp
import pytest

from deploy.local import stack as local_stack
from tests.integration.portal_world import PortalProcess, SSEClient
from tests.integration.stream_support import Worker, create_topic, produce, simulate, wait_for, worker_env
from tests.portal_support import hs_token

pytestmark = pytest.mark.integration

PHASE1 = 8  # readings per PDL before the browser connects
PHASE2 = 12  # readings per PDL while it is connected


async def test_worker_to_browser_through_the_portal(kafka_bootstrap: str, redis_worker_url: str,
                                                     stack: local_stack.StackConfig, unique_name,
                                                     tmp_path: Path) -> None:  # fmt: skip
    topic = unique_name("readings")
    await create_topic(kafka_bootstrap, topic)
    readings, meters = simulate(n_pdls=2, first_day=date(2026, 11, 3), days=1, seed=21)
    mine, theirs = list(meters)
    worker = Worker("worker", worker_env(kafka_bootstrap, redis_worker_url, topic, unique_name("app")),
                    tmp_path / "data", tmp_path)
    portal = PortalProcess(tmp_path, stack.redis_url, "linky-portal", stack.redis_password_file("linky-portal"))
    client = None
    try:
        worker.start()
        portal.env["LINKY_PORTAL_WORKER_URL"] = f"http://127.0.0.1:{worker.port}"
        portal.start()
        first = [r for i in range(PHASE1) for r in (readings[mine][i], readings[theirs][i])]
        await produce(kafka_bootstrap, topic, first)
        wait_for(lambda: worker.get(f"/pdl/{mine}/live")[1] is not None
                 and worker.get(f"/pdl/{mine}/live")[1].get("time") == readings[mine][PHASE1 - 1]["time"],
                 120, "the worker's live state of the first readings", [worker])  # fmt: skip

        jar = aiohttp.CookieJar(unsafe=True)  # cookies on 127.0.0.1
        async with aiohttp.ClientSession(cookie_jar=jar) as s:
            async with s.get(f"{portal.url}/login?token={hs_token([mine], ttl=3600, sub='cust-7')}",
                             allow_redirects=False) as r:
                assert r.status == 303
            cookie = {c.key: c.value for c in jar}
            assert list(cookie) == ["linky_portal_session"]

            # forwarded routes: same status and body as the worker's own answer
            for view in ("live", "consumption?granularity=hour", "consumption", "battery", "alerts"):
                async with s.get(f"{portal.url}/api/pdl/{mine}/{view}") as r:
                    status, body = r.status, await r.json()
                assert (status, body) == worker.get(f"/pdl/{mine}/{view}"), view
                assert status in (200, 404)
            async with s.get(f"{portal.url}/api/pdl/{mine}/live") as r:
                assert r.status == 200 and (await r.json())["pdl"] == mine
            for path in (f"/api/pdl/{theirs}/live", f"/api/pdl/{theirs}/events", f"/api/pdl/{theirs}/consumption"):
                async with s.get(portal.url + path) as r:
                    assert r.status == 403, path
            async with s.get(f"{portal.url}/api/me") as r:
                me = await r.json()
            assert me["sub"] == "cust-7" and [p["pdl"] for p in me["pdls"]] == [mine]

        client = await SSEClient(f"{portal.url}/api/pdl/{mine}/events", cookies=cookie).open()
        assert client.status == 200
        await client.wait_for(lambda: bool(client.named("ready")), 20, "the snapshots")
        status, live_now = worker.get(f"/pdl/{mine}/live")
        names = [n for n, _ in client.events]
        assert names[:names.index("ready")] in (["live", "conso"], ["live", "conso", "battery", "surplus", "alerts"],
                                                ["live", "conso", "alerts"], ["live", "conso", "battery", "surplus"])
        assert client.named("live") == [live_now]  # the snapshot is the worker's current state

        second = [r for i in range(PHASE1, PHASE1 + PHASE2) for r in (readings[mine][i], readings[theirs][i])]
        await produce(kafka_bootstrap, topic, second)
        expected = [r["time"] for r in readings[mine][PHASE1 - 1:PHASE1 + PHASE2]]
        await client.wait_for(lambda: len(client.named("live")) >= len(expected), 60, "every live update")
        await asyncio.sleep(1.0)
        lives = client.named("live")
        assert [m["time"] for m in lives] == expected  # snapshot, then each update, in order, none missing
        consos = client.named("conso")
        times = [datetime.fromisoformat(m["time"]) for m in consos]
        assert times == sorted(set(times)) and consos[-1]["time"] == expected[-1]
        # the snapshot's, then the conso view coalesced per group of the PDL's readings folded in
        # a row (agents/readings.py GROUP_MAX, 16): at least one per group, the last one exact
        assert len(consos) >= 1 + -(-PHASE2 // 16)
        payloads = [v for _, v in client.events]
        assert all(v.get("pdl") == mine for v in payloads if isinstance(v, dict) and "pdl" in v)
        assert theirs not in json.dumps(payloads)
    finally:
        if client is not None:
            await client.close()
        portal.stop()
        worker.stop()
