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

import asyncio
import json
import os
import re
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiokafka import AIOKafkaProducer

from stream import clock
from stream.contracts import write_contract
from stream.settings import Settings
from tables.contracts import Contract, version_from_dict
from tests.conftest import REPO_ROOT, free_port
from tests.integration.battery_world import HOUR, PARIS, Meter, Worker, wait_for, worker_env
from tests.integration.browser import Browser
from tests.integration.stream_support import create_topic
from tests.portal_support import SECRET, hs_token

pytestmark = pytest.mark.integration

TABS = ("live", "conso", "index", "battery", "surplus", "alerts", "contract")


def wh_of(cell: str) -> int:
    """A kWh cell as the page writes it (fr-FR, 3 decimals) -> Wh."""
    text = re.sub(r"[\s\u202f\u00a0]", "", cell).replace(",", ".")
    return round(float(text) * 1000)


class Portal:
    """``linky-stream portal`` as a subprocess."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log, self.proc = env, log, None

    def start(self) -> None:
        out = open(self.log, "ab")
        code = "import sys; from stream.cli import main; sys.exit(main(sys.argv[1:]))"
        self.proc = subprocess.Popen([sys.executable, "-c", code, "portal"], env=self.env, cwd=REPO_ROOT,
                                     stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-40:])
