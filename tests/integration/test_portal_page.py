"""The customer dashboard page in a real browser (Debian's Chromium through Selenium) against the
real portal, worker, Kafka and Redis, with simulated meters (tests/integration/battery_world.py).

Two meters: A with a virtual battery (and a price grid), B with surplus resale, each with a day
and a half of hourly readings up to a few minutes ago on the product's clock, then live readings.
The test checks, as a person would see it:

- the page loads from ``/login?token=`` with a token for A and B (PDL selector), and a new reading
  changes the live power on screen within 2 s;
- "Ma conso" draws as many bars as the API returns buckets, and its table shows the API's numbers
  to the Wh, for hours and days;
- the battery tab exists only for A's offer and shows the API's level; the surplus tab only for B;
- a token for A alone never shows B: not in the page, 403 from the API and the event stream for B
  (fetched by the page's own origin, with its cookie); an expired token shows the login message;
- no console errors; at 360 px nothing overflows horizontally, on every tab;
- screenshots of every tab (desktop and phone) are saved as artifacts (tests/integration/browser.py).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiokafka import AIOKafkaProducer

from stream import clock
from stream.contracts import ensure_contracts_topic, write_contract
from stream.settings import Settings
from tables.contracts import Contract, version_from_dict
from tests.conftest import free_port
from tests.integration.battery_world import HOUR, PARIS, Meter, Worker, wait_for, worker_env
from tests.integration.browser import Browser
from tests.integration.portal_world import PortalProcess
from tests.integration.stream_support import create_topic
from tests.portal_support import hs_token

pytestmark = pytest.mark.integration

TABS = ("live", "conso", "index", "battery", "surplus", "alerts", "contract")


def wh_of(cell: str) -> int:
    """A kWh cell as the page writes it (fr-FR, 3 decimals) -> Wh."""
    text = re.sub(r"[\s\u202f\u00a0]", "", cell).replace(",", ".")
    return round(float(text) * 1000)



FEES = {"HP": "0.1122", "HC": "0.0945"}
TARIFF = {"option": "hchp", "prices_eur_per_kwh": {"HP": "0.2700", "HC": "0.2068"},
          "standing_charge_eur_per_month": "15.37", "installment_eur_per_month": "95"}  # fmt: skip


def digits(text: str) -> str:
    return re.sub(r"\D", "", text)


async def test_the_dashboard_in_a_real_browser(kafka_bootstrap: str, redis_url: str, redis_worker_url: str,
                                               stack: Any, unique_name: Any, tmp_path: Path) -> None:
    prefix = f"{uuid.uuid4().int % 10**10:010d}"
    pdl_a, pdl_b = f"{prefix}0001", f"{prefix}0002"
    readings_topic, contracts_topic, settings_topic = (unique_name("readings"), unique_name("contracts"),
                                                       unique_name("alert-settings"))  # fmt: skip
    web_port = free_port()
    common = {"LINKY_KAFKA_BOOTSTRAP": kafka_bootstrap, "LINKY_READINGS_TOPIC": readings_topic,
              "LINKY_CONTRACTS_TOPIC": contracts_topic, "LINKY_ALERT_SETTINGS_TOPIC": settings_topic,
              "LINKY_TOPIC_PARTITIONS": "2"}  # fmt: skip
    env = worker_env({**common, "LINKY_REDIS_URL": redis_worker_url, "LINKY_APP_ID": unique_name("page-app"),
                      "LINKY_DATADIR": str(tmp_path / "data"), "LINKY_WEB_PORT": str(web_port),
                      "LINKY_LOG_FORMAT": "text"})  # fmt: skip
    await create_topic(kafka_bootstrap, readings_topic, partitions=2)

    # Contracts as an import of existing customers would write them (effective in the past).
    cfg = Settings.from_env(env)
    since = (clock.today().replace(day=1) - timedelta(days=1)).replace(day=1).isoformat()
    await ensure_contracts_topic(cfg)
    await write_contract(cfg, Contract(pdl=pdl_a, versions=(version_from_dict({
        "effective_from": since, "offer": "virtual_battery", "battery": {"fees_eur_per_kwh": FEES},
        "tariff": TARIFF}),)))  # fmt: skip
    await write_contract(cfg, Contract(pdl=pdl_b, versions=(version_from_dict({
        "effective_from": since, "offer": "surplus_resale", "resale": {"rate_eur_per_kwh": "0.06"}}),)))  # fmt: skip

    # A day and a half of hourly readings, up to the last full hour on the product's clock.
    now = clock.now()
    last_hour = now.replace(minute=0, second=0, microsecond=0)
    start = last_hour - 36 * HOUR
    meters = {pdl_a: Meter(pdl_a, seed=41), pdl_b: Meter(pdl_b, seed=42)}
    history = {p: m.run(start, last_hour)[0] for p, m in meters.items()}

    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", linger_ms=2)
    await producer.start()

    async def send(readings: list[dict[str, Any]]) -> None:
        for r in readings:
            await producer.send(readings_topic, json.dumps(r).encode(), key=r["pdl"].encode())
        await producer.flush()

    worker = Worker(env, tmp_path / "worker.log")
    portal = PortalProcess(tmp_path, stack.redis_url, "linky-portal", stack.redis_password_file("linky-portal"),
                           worker_url=f"http://127.0.0.1:{web_port}", **common)  # fmt: skip
    http = aiohttp.ClientSession()
    browser: Browser | None = None

    async def api(token: str, path: str) -> tuple[int, Any]:
        async with http.get(f"{portal.url}{path}", headers={"Authorization": f"Bearer {token}"}) as r:
            return r.status, (await r.json() if r.content_type == "application/json" else await r.text())

    def table(css: str) -> tuple[list[str], list[list[str]]]:
        assert browser is not None
        return browser.js(
            "const t = document.querySelector(arguments[0]);"
            "return [[...t.querySelectorAll('thead th')].map((c) => c.textContent),"
            "        [...t.querySelectorAll('tbody tr')].map((r) => [...r.children].map((c) => c.textContent))];", css)

    token_ab, token_a = hs_token([pdl_a, pdl_b], ttl=3600, sub="cust-ab"), hs_token([pdl_a], ttl=3600, sub="cust-a")
    try:
        worker.start()
        await send(sorted(history[pdl_a] + history[pdl_b], key=lambda r: r["time"]))
        last_time = history[pdl_a][-1]["time"]

        async def folded() -> bool:
            for p in (pdl_a, pdl_b):
                status, doc = await api(token_ab, f"/api/pdl/{p}/battery") if portal.proc else (0, None)
                if status != 200 or doc.get("time") is None or datetime.fromisoformat(doc["time"]) != \
                        datetime.fromisoformat(last_time):
                    return False
            return True

        portal.start()
        await wait_for(folded, "both meters folded by the worker", worker, timeout=120)
        async with http.get(f"{portal.url}/readyz") as r:  # Redis subscription, worker, page: all there
            assert r.status == 200 and (await r.json())["ready"] is True, await r.text()

        # ---- the page loads from /login with a token for both PDLs; live power follows the stream
        browser = Browser(1280, 900)
        browser.open(f"{portal.url}/login?token={token_ab}")
        browser.wait(lambda: browser.find("#app").is_displayed(), "the page")
        assert token_ab not in browser.driver.current_url  # the token left the address bar
        options = [o.get_attribute("value") for o in browser.finds("#pdl-select option")]
        assert options == [pdl_a, pdl_b]
        browser.wait(lambda: digits(browser.text("#live-drawn")) == "800", "the live power of the last reading")
        live_at = now.replace(microsecond=0)
        await send([meters[pdl_a].reading(live_at, power_va=4321, export_power_va=0)])
        sent = time.monotonic()
        browser.wait(lambda: digits(browser.text("#live-drawn")) == "4321", "the new reading on screen", timeout=10,
                     every=0.02)  # fmt: skip
        assert time.monotonic() - sent < 2.0, "a new reading must reach the screen within 2 s"
        assert "Dernière mesure" in browser.text("#live-age")

        # ---- Ma conso: as many bars as the API returns buckets, the table shows the API's numbers
        browser.find("#tab-conso").click()
        day = live_at.astimezone(PARIS).date()
        for granularity, lo, hi in (("hour", day, day + timedelta(days=1)),
                                    ("day", day.replace(day=1), (day.replace(day=1) + timedelta(days=32)).replace(day=1))):
            browser.find(f'[data-granularity="{granularity}"]').click()
            status, doc = await api(token_ab, f"/api/pdl/{pdl_a}/consumption?granularity={granularity}"
                                              f"&from={lo.isoformat()}&to={hi.isoformat()}")  # fmt: skip
            assert status == 200 and doc["buckets"], doc
            n = len(doc["buckets"])
            browser.wait(lambda: browser.find("#conso-chart").get_attribute("data-bars") == str(n),
                         f"{n} {granularity} bars drawn")  # fmt: skip
            assert browser.find("#conso-table").get_attribute("data-rows") == str(n)
            header, rows = table("#conso-table")  # one snapshot: live updates re-render the table
            assert not any(re.search(r"EASF\d\d", h) for h in header), header  # readable names only
            assert len(rows) == n
            total_col, export_col = header.index("Total (kWh)"), header.index("Injection (kWh)")
            for cells, bucket in zip(rows, doc["buckets"]):
                assert (wh_of(cells[total_col]), wh_of(cells[export_col])) == (bucket["import_wh"], bucket["export_wh"])
                if bucket.get("cost"):
                    assert cells[-1].replace("\u202f", " ").replace("\xa0", " ").startswith(
                        bucket["cost"]["total_eur"].replace(".", ","))  # fmt: skip
            assert doc["buckets"][0].get("cost") is not None  # A has a price grid: the cost column shows

        # ---- battery only for A's offer, with the API's values; surplus only for B's
        assert browser.find("#tab-battery").is_displayed() and not browser.find("#tab-surplus").is_displayed()
        browser.find("#tab-battery").click()
        _, battery_a = await api(token_ab, f"/api/pdl/{pdl_a}/battery")
        browser.wait(lambda: wh_of(browser.text("#battery-level").replace("kWh", "")) == battery_a["level_wh"],
                     "the battery level")  # fmt: skip
        assert len(table("#battery-table")[1]) == len(battery_a["months"])
        browser.driver.execute_script(
            "const s = document.getElementById('pdl-select'); s.value = arguments[0];"
            "s.dispatchEvent(new Event('change'));", pdl_b)  # fmt: skip
        browser.wait(lambda: browser.find("#tab-surplus").is_displayed(), "the surplus tab for B")
        assert not browser.find("#tab-battery").is_displayed()
        browser.find("#tab-surplus").click()
        _, battery_b = await api(token_ab, f"/api/pdl/{pdl_b}/battery")
        month_b = battery_b["surplus"]["month"]
        browser.wait(lambda: wh_of(browser.text("#surplus-month-kwh").replace("kWh", "")) == month_b["surplus_wh"],
                     "B's surplus this month")  # fmt: skip
        assert month_b["surplus_wh"] > 0

        # ---- every tab: no horizontal overflow at 360 px; screenshots (desktop and phone)
        for pdl, tabs in ((pdl_a, ("live", "conso", "index", "battery", "alerts", "contract")), (pdl_b, ("surplus",))):
            browser.driver.execute_script(
                "const s = document.getElementById('pdl-select'); s.value = arguments[0];"
                "s.dispatchEvent(new Event('change'));", pdl)  # fmt: skip
            for width in (1280, 360):
                browser.resize(width, 900 if width > 400 else 780)
                for tab in tabs:
                    browser.wait(lambda: browser.find(f"#tab-{tab}").is_displayed(), f"tab {tab}")
                    browser.find(f"#tab-{tab}").click()
                    time.sleep(0.6)  # charts redraw when idle
                    if width == 360:
                        assert browser.horizontal_overflow() == 0, (tab, browser.overflowing())
                    browser.screenshot(f"{tab}" if width > 400 else f"phone-{tab}")
        browser.resize(1280, 900)

        # ---- the household's alert settings, written from the page and applied by the worker
        browser.driver.execute_script(
            "const s = document.getElementById('pdl-select'); s.value = arguments[0];"
            "s.dispatchEvent(new Event('change'));", pdl_a)  # fmt: skip
        browser.find("#tab-alerts").click()
        browser.find('#alert-kinds input[name="peak_period"]').click()
        budget = browser.find("#alert-budget")
        budget.clear()
        budget.send_keys("12.5")
        browser.find('#alert-settings button[type="submit"]').click()
        browser.wait(lambda: "enregistrés" in browser.text("#alert-settings-status"), "the settings saved")

        async def applied() -> dict[str, Any] | None:
            status, doc = await api(token_a, f"/api/pdl/{pdl_a}/alert-settings")
            return doc if status == 200 and doc["daily_budget_wh"] == 12_500 else None

        prefs = await wait_for(applied, "the worker to apply the new settings", worker)
        assert prefs["enabled"]["peak_period"] is False and prefs["enabled"]["overload"] is True

        assert browser.console_errors() == []

        # ---- a token for A never shows B; an expired token shows the login message
        browser.open(f"{portal.url}/logout")
        browser.open(f"{portal.url}/login?token={token_a}")
        browser.wait(lambda: browser.find("#app").is_displayed(), "the page for A alone")
        browser.wait(lambda: digits(browser.text("#live-drawn")) == "4321", "A's live power")
        assert not browser.find("#pdl-choice").is_displayed() and pdl_a in browser.text("#pdl-one")
        statuses = browser.driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "Promise.all(['consumption', 'battery', 'live', 'events', 'alert-settings'].map((v) =>"
            "  fetch('/api/pdl/' + arguments[0] + '/' + v, {credentials: 'same-origin'}).then((r) => r.status)))"
            ".then(done);", pdl_b)  # fmt: skip
        assert statuses == [403] * 5, statuses
        for tab in ("live", "conso", "index", "battery", "alerts", "contract"):
            browser.find(f"#tab-{tab}").click()
            assert pdl_b not in browser.body_text(), tab
        browser.console()  # the 403s above were asked for: forget them
        browser._console.clear()

        expired = hs_token([pdl_a], ttl=-60)
        browser.open(f"{portal.url}/logout")
        browser.open(f"{portal.url}/login?token={expired}")
        browser.wait(lambda: "reconnectez-vous" in browser.body_text(), "the login message for an expired token")
        assert expired not in browser.body_text()
        browser.open(f"{portal.url}/")  # no session at all: the page says so too
        browser.wait(lambda: browser.find("#login-message").is_displayed(), "the login message without a session")
        assert not browser.find("#app").is_displayed()
        errors = [e for e in browser.console_errors() if "401" not in e]  # the refused login / api/me
        assert errors == [], errors
    finally:
        if browser is not None:
            browser.quit()
        await http.close()
        await producer.stop()
        portal.stop()
        worker.stop()


async def test_alert_settings_writes_are_refused_unless_safe(kafka_bootstrap: str, stack: Any, unique_name: Any,
                                                             tmp_path: Path) -> None:
    """The write route: another PDL's settings (403), no CSRF header (403), a foreign Origin (403),
    not JSON (415/400), an invalid document (400 with the reason), too many writes (429); a valid
    one is on the topic, stamped on the product's clock."""
    from aiokafka import AIOKafkaConsumer

    topic = unique_name("alert-settings")
    portal = PortalProcess(tmp_path, stack.redis_url, "linky-portal", stack.redis_password_file("linky-portal"),
                           LINKY_KAFKA_BOOTSTRAP=kafka_bootstrap, LINKY_ALERT_SETTINGS_TOPIC=topic,
                           LINKY_TOPIC_PARTITIONS="2", LINKY_PORTAL_SETTINGS_WRITES_PER_MINUTE="3")  # fmt: skip
    mine, theirs = "44444444444401", "44444444444402"
    token = hs_token([mine])
    ok_headers = {"Authorization": f"Bearer {token}", "X-Requested-With": "linky-portal"}
    portal.start()
    try:
        async with aiohttp.ClientSession() as http:
            async def put(pdl: str, body: Any, headers: dict[str, str], raw: bytes | None = None) -> tuple[int, Any]:
                data = raw if raw is not None else json.dumps(body).encode()
                hdrs = {"Content-Type": "application/json", **headers}
                async with http.put(f"{portal.url}/api/pdl/{pdl}/alert-settings", data=data, headers=hdrs) as r:
                    return r.status, await r.json()

            assert (await put(theirs, {"daily_budget_wh": 5000}, ok_headers))[0] == 403
            assert (await put(mine, {"daily_budget_wh": 5000}, {"Authorization": f"Bearer {token}"}))[0] == 403
            assert (await put(mine, {}, {**ok_headers, "Origin": "https://evil.example"}))[0] == 403
            assert (await put(mine, {}, {"X-Requested-With": "linky-portal"}))[0] == 401
            status, body = await put(mine, None, ok_headers, raw=b"{not json")
            assert status == 400 and "JSON" in body["error"]
            status, body = await put(mine, {"daily_budget_wh": -3}, ok_headers)
            assert status == 400 and "daily_budget_wh" in body["error"]
            status, body = await put(mine, {"enabled": {"fire": True}}, ok_headers)
            assert status == 400 and "fire" in body["error"]
            before = clock.now()
            status, body = await put(mine, {"daily_budget_wh": 7000, "enabled": {"overload": False}}, ok_headers)
            assert status == 200, body
            assert body["daily_budget_wh"] == 7000 and body["enabled"]["overload"] is False
            assert abs((datetime.fromisoformat(body["updated_at"]) - before).total_seconds()) < 30
            for _ in range(2):
                assert (await put(mine, {"daily_budget_wh": 7000}, ok_headers))[0] == 200
            status, _ = await put(mine, {"daily_budget_wh": 7000}, ok_headers)
            assert status == 429  # the 4th write within a minute
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest",
                                    enable_auto_commit=False)  # fmt: skip
        await consumer.start()
        try:
            batches = await consumer.getmany(timeout_ms=5000)
            records = [r for rs in batches.values() for r in rs]
        finally:
            await consumer.stop()
        assert len(records) == 3 and {r.key for r in records} == {mine.encode()}
        assert json.loads(records[0].value)["enabled"]["overload"] is False
        assert token.encode() not in portal.log.read_bytes()  # never logged
    finally:
        portal.stop()
