"""Helpers of the portal integration tests: the real portal process (``python -m stream portal``)
on free loopback ports, a browser-like SSE client, a private redis-server with the stack's ACL
file (for the restart scenario), metrics probes."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from deploy.local import stack as local_stack
from tests.conftest import REPO_ROOT, free_port
from tests.portal_support import SECRET


class PortalProcess:
    """``python -m stream portal`` with its own ports, secret file and log."""

    def __init__(self, tmp: Path, redis_url: str, redis_user: str, redis_password_file: Path, *,
                 worker_url: str = "http://127.0.0.1:9", name: str = "portal", **extra: str) -> None:
        self.port, self.metrics_port = free_port(), free_port()
        self.log = tmp / f"{name}.log"
        secret = tmp / f"{name}-jwt.secret"
        secret.write_text(SECRET.decode())
        env = {k: v for k, v in os.environ.items() if not k.startswith("LINKY_") or k == "LINKY_CLOCK_OFFSET_SECONDS"}
        env.update(
            LINKY_PORTAL_PORT=str(self.port), LINKY_PORTAL_METRICS_PORT=str(self.metrics_port),
            LINKY_PORTAL_REDIS_URL=redis_url, LINKY_PORTAL_REDIS_USERNAME=redis_user,
            LINKY_PORTAL_REDIS_PASSWORD_FILE=str(redis_password_file), LINKY_PORTAL_JWT_SECRET_FILE=str(secret),
            LINKY_PORTAL_WORKER_URL=worker_url, LINKY_PORTAL_SSE_HEARTBEAT_SECONDS="1",
            LINKY_PORTAL_REDIS_RETRY_SECONDS="0.3", LINKY_LOG_FORMAT="json", PYTHONUNBUFFERED="1",
            PYTHONPATH=str(REPO_ROOT),
        )  # fmt: skip
        if "LINKY_PORTAL_JWKS_FILE" in extra:
            env.pop("LINKY_PORTAL_JWT_SECRET_FILE")
        env.update(extra)
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "PortalProcess":
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "stream", "portal"], env=self.env, cwd=REPO_ROOT,
                                         stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"portal exited ({self.proc.returncode}):\n{self.tail()}")
            try:
                import socket

                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"portal did not listen within 30 s:\n{self.tail()}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    async def metric(self, name: str, **labels: str) -> float:
        async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{self.metrics_port}/metrics") as r:
            text = await r.text()
        total = 0.0
        for line in text.splitlines():
            if line.startswith("#") or not line:
                continue
            key, _, value = line.rpartition(" ")
            base, _, rest = key.partition("{")
            if base == name and all(f'{k}="{v}"' in rest for k, v in labels.items()):
                total += float(value)
        return total


@dataclass
class SSEClient:
    """A browser-like EventSource: reads ``event:``/``data:`` blocks into ``events``."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    cookies: dict[str, str] = field(default_factory=dict)
    events: list[tuple[str, Any]] = field(default_factory=list)
    comments: int = 0
    status: int = 0
    _task: asyncio.Task[None] | None = None
    _session: aiohttp.ClientSession | None = None
    _opened: asyncio.Event = field(default_factory=asyncio.Event)

    async def open(self) -> "SSEClient":
        self._session = aiohttp.ClientSession(cookies=self.cookies, timeout=aiohttp.ClientTimeout(total=None))
        self._task = asyncio.create_task(self._read())
        async with asyncio.timeout(10):
            await self._opened.wait()
        return self

    async def _read(self) -> None:
        assert self._session is not None
        try:
            async with self._session.get(self.url, headers=self.headers) as resp:
                self.status = resp.status
                self._opened.set()
                if resp.status != 200:
                    return
                name, data = "message", []
                async for raw in resp.content:
                    line = raw.decode().rstrip("\n")
                    if line.startswith(":"):
                        self.comments += 1
                    elif line.startswith("event: "):
                        name = line[7:]
                    elif line.startswith("data: "):
                        data.append(line[6:])
                    elif line == "" and data:
                        text = "\n".join(data)
                        try:
                            value: Any = json.loads(text)
                        except ValueError:
                            value = text
                        self.events.append((name, value))
                        name, data = "message", []
        finally:
            self._opened.set()

    def named(self, *names: str) -> list[Any]:
        return [v for n, v in self.events if n in names]

    async def wait_for(self, cond: Any, timeout: float, what: str) -> None:
        end = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > end:
                raise AssertionError(f"timed out waiting for {what}; events: {self.events[-10:]}")
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._session is not None:
            await self._session.close()


class AclRedis:
    """A private redis-server with the stack's ACL users (its own passwords), stopped/started by the test."""

    def __init__(self, tmp: Path, cache_dir: Path) -> None:
        self.cfg = local_stack.StackConfig(stack_dir=tmp / "acl-redis", cache_dir=cache_dir, kafka_port=0,
                                           controller_port=0, redis_port=free_port(), kafka_heap="64m")
        (self.cfg.stack_dir / "redis").mkdir(parents=True)
        local_stack.write_redis_acl(self.cfg)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        exe = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.cfg.redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--aclfile", str(self.cfg.stack_dir / "redis" / "users.acl"),
             "--logfile", str(self.cfg.stack_dir / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)  # fmt: skip
        deadline = time.monotonic() + 20
        while not local_stack._redis_admin_ping(self.cfg):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError(f"private redis-server did not start: {self.cfg.stack_dir / 'redis.log'}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)
        self.proc = None
