"""The local stack: a real single-node Apache Kafka (KRaft) broker and a real redis-server.

Everything runs on 127.0.0.1 and lives under one git-ignored folder (``.stack/`` by default):

    .stack/kafka/server.properties   broker+controller config (written on ``up``)
    .stack/kafka/data/               KRaft metadata and topic data
    .stack/redis/                    redis working dir; users.acl (the ACL file, written on ``up``)
    .stack/secrets/redis-<user>.password   the Redis users' passwords (generated on first ``up``,
                                     or taken from LINKY_REDIS_PASSWORD_{ADMIN,WORKER,PORTAL})
    .stack/logs/kafka/server.log     broker log (log4j2), .stack/logs/kafka.out (JVM stdout/stderr)
    .stack/logs/redis.log            redis log
    .stack/tls/                      the stack's CA (ca.pem) and the broker's PKCS12 keystore,
                                     generated with keytool on first ``up``
    .stack/secrets/kafka-<user>.password   the Kafka SCRAM users' passwords (first ``up``, or
                                     LINKY_KAFKA_PASSWORD_{ADMIN,WORKER,EDGE,PORTAL})
    .stack/run/{kafka,redis}.pid     pids of the processes *we* started

Kafka's jars are resolved from Maven Central with ``mvn`` (the broker artifact
``org.apache.kafka:kafka_2.13`` and its runtime dependencies, plus the log4j2 binding
that Kafka 4's POM does not bring in; see ../shared/stack.md section 3) into a cache that
survives clean clones (``~/.cache/linky-stream`` by default).

Kafka listens twice (docs/security.md): PLAINTEXT on loopback for local development (its principal,
``User:ANONYMOUS``, is a super user, so the tests and tools keep working unchanged), and SASL_SSL
(TLS + SCRAM-SHA-512) on ``LINKY_KAFKA_TLS_PORT`` with the StandardAuthorizer's ACLs
(``KAFKA_ACLS``, applied by deploy/local/SecureSetup.java): the edge user may only produce to the
readings topic, the worker users consume/produce what they need, nobody else gets in.

Usage: ``python -m deploy.local up|down|status|reset|fetch|deps`` (also the ``linky-stack`` script).
Only the standard library is used so that the stack can be driven before the virtualenv exists.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import os
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

REPO_ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent

# Kafka 4.4 is the newest line on Maven Central; aiokafka 0.14 + faust-streaming 0.15.3 were
# checked against it (produce, consumer groups, topic creation, transactions):
# tests/integration/test_stack.py keeps proving it.
KAFKA_VERSION = os.environ.get("LINKY_KAFKA_VERSION", "4.4.0")
LOG4J_VERSION = "2.25.5"  # the log4j2 version Kafka 4.x itself pins
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"


# Redis users (docs/deployment.md "Privacy"). The default user is disabled: every connection
# authenticates. Rules are exactly what each client sends:
# - linky-worker (stream/redis_publisher.py): PUBLISH + MSET of each batch, SET of the snapshot
#   rewrite after an outage, PING while Redis is down; GET is granted (the contract; the
#   worker reads nothing today). Keys and channels ``linky:*`` only.
# - linky-portal (portal/hub.py): SUBSCRIBE/UNSUBSCRIBE on channels ``linky:*``, GET of the
#   snapshot keys ``linky:*`` (read-only key pattern), PING (health).
# - linky-admin: everything; the stack's own health check, the tests, operators (redis-cli).
# redis-py also sends ``CLIENT SETINFO`` after AUTH; it is refused for the two service users and
# redis-py ignores that refusal.
REDIS_USERS: dict[str, str] = {
    "linky-admin": "~* &* +@all",
    "linky-worker": "resetkeys ~linky:* resetchannels &linky:* -@all +ping +publish +set +get +mset",
    "linky-portal": "resetkeys %R~linky:* resetchannels &linky:* -@all +ping +subscribe +unsubscribe +get",
}
REDIS_ROLES = {"admin": "linky-admin", "worker": "linky-worker", "portal": "linky-portal"}

# Kafka SCRAM-SHA-512 users of the SASL_SSL listener (docs/security.md). linky-admin is a super
# user (the stack itself, operators' CLIs: contracts, gateways); the others get exactly KAFKA_ACLS.
KAFKA_ROLES = {"admin": "linky-admin", "worker": "linky-worker", "edge": "linky-edge", "portal": "linky-portal"}
SUPER_USERS = ("User:ANONYMOUS", "User:linky-admin")  # ANONYMOUS = the loopback PLAINTEXT listener


def kafka_acls(env: dict[str, str] | None = None) -> list[tuple[str, str, str, str, str]]:
    """``(principal, resource type, pattern type, name, operation)``, all ALLOW from any host.

    Topic names are prefixes (``PREFIXED``) of the configured names so that tests can use their
    own ``linky.readings.<unique>`` topics and ``linky-stream-<unique>`` app ids; a production
    cluster uses LITERAL names (docs/deployment.md)."""
    env = dict(os.environ if env is None else env)
    readings = env.get("LINKY_READINGS_TOPIC", "linky.readings")
    inputs = [readings, env.get("LINKY_CONTRACTS_TOPIC", "linky.contracts"),
              env.get("LINKY_ALERT_SETTINGS_TOPIC", "linky.alert-settings"),
              env.get("LINKY_GATEWAYS_TOPIC", "linky.gateways")]
    app_id = env.get("LINKY_APP_ID", "linky-stream")
    edge, worker, portal = "User:linky-edge", "User:linky-worker", "User:linky-portal"
    acls = [(edge, "TOPIC", "PREFIXED", readings, op) for op in ("WRITE", "DESCRIBE")]
    # the worker reads (and declares, as faust does at start) its input topics...
    acls += [(worker, "TOPIC", "PREFIXED", name, op) for name in inputs for op in ("READ", "DESCRIBE", "CREATE")]
    # ...and owns everything named after its app id: changelogs, the assignor topic, its group
    acls += [(worker, kind, "PREFIXED", app_id, "ALL") for kind in ("TOPIC", "GROUP", "TRANSACTIONAL_ID")]
    acls += [(worker, "CLUSTER", "LITERAL", "kafka-cluster", "IDEMPOTENT_WRITE")]
    # the portal writes the households' alert preferences
    acls += [(portal, "TOPIC", "PREFIXED", inputs[2], op) for op in ("WRITE", "DESCRIBE", "DESCRIBE_CONFIGS", "CREATE")]
    return acls


class StackError(RuntimeError):
    """A service could not be set up or started; the message says why and where to look."""


@dataclass(frozen=True)
class StackConfig:
    """Where the stack lives and which ports it uses (env vars ``LINKY_STACK_*``, ``LINKY_*_PORT``)."""

    stack_dir: Path
    cache_dir: Path
    kafka_port: int
    controller_port: int
    redis_port: int
    kafka_heap: str
    tls_port: int = 9094

    @classmethod
    def from_env(cls) -> "StackConfig":
        env = os.environ
        cache_home = Path(env.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        return cls(
            stack_dir=Path(env.get("LINKY_STACK_DIR", REPO_ROOT / ".stack")).resolve(),
            cache_dir=Path(env.get("LINKY_CACHE_DIR", cache_home / "linky-stream")).resolve(),
            kafka_port=int(env.get("LINKY_KAFKA_PORT", "9092")),
            controller_port=int(env.get("LINKY_KAFKA_CONTROLLER_PORT", "9093")),
            redis_port=int(env.get("LINKY_REDIS_PORT", "6379")),
            kafka_heap=env.get("LINKY_KAFKA_HEAP", "768m"),
            tls_port=int(env.get("LINKY_KAFKA_TLS_PORT", "9094")),
        )

    @property
    def tls_bootstrap_servers(self) -> str:
        """The SASL_SSL listener (TLS + SCRAM-SHA-512 + ACLs)."""
        return f"127.0.0.1:{self.tls_port}"

    @property
    def tls_dir(self) -> Path:
        return self.stack_dir / "tls"

    @property
    def ca_file(self) -> Path:
        """The stack's CA certificate (PEM): what clients verify the broker against."""
        return self.tls_dir / "ca.pem"

    def kafka_password_file(self, user: str) -> Path:
        """``.stack/secrets/kafka-<user>.password`` (written by ``up``)."""
        return self.secrets_dir / f"kafka-{user}.password"

    def kafka_client_env(self, user: str) -> dict[str, str]:
        """The ``LINKY_KAFKA_*`` variables of a client of the SASL_SSL listener as ``user``."""
        return {"LINKY_KAFKA_BOOTSTRAP": self.tls_bootstrap_servers, "LINKY_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "LINKY_KAFKA_CA_FILE": str(self.ca_file), "LINKY_KAFKA_USERNAME": user,
                "LINKY_KAFKA_PASSWORD_FILE": str(self.kafka_password_file(user))}

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def redis_url(self) -> str:
        """The address only (no credentials): combine with a user's password file."""
        return f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def secrets_dir(self) -> Path:
        return self.stack_dir / "secrets"

    def redis_password_file(self, user: str) -> Path:
        """``.stack/secrets/redis-<user>.password`` (written by ``up``)."""
        return self.secrets_dir / f"redis-{user}.password"

    def redis_password(self, user: str) -> str:
        """The password of ``user``: ``LINKY_REDIS_PASSWORD_<ROLE>`` if set, else its file."""
        role = next((r for r, u in REDIS_ROLES.items() if u == user), None)
        from_env = os.environ.get(f"LINKY_REDIS_PASSWORD_{role.upper()}") if role else None
        if from_env:
            return from_env
        try:
            return self.redis_password_file(user).read_text().strip()
        except OSError:
            raise StackError(f"no password for redis user {user}: run `python -m deploy.local up` first "
                             f"(it writes {self.redis_password_file(user)})") from None

    def redis_url_for(self, user: str) -> str:
        """``redis://user:password@127.0.0.1:port/0`` (for tests and tools; services use files)."""
        return f"redis://{quote(user, safe='')}:{quote(self.redis_password(user), safe='')}@127.0.0.1:{self.redis_port}/0"

    @property
    def redis_admin_url(self) -> str:
        return self.redis_url_for("linky-admin")

    @property
    def redis_worker_url(self) -> str:
        return self.redis_url_for("linky-worker")

    @property
    def redis_portal_url(self) -> str:
        return self.redis_url_for("linky-portal")

    @property
    def kafka_libs(self) -> Path:
        return self.cache_dir / f"kafka-{KAFKA_VERSION}" / "libs"

    @property
    def logs(self) -> Path:
        return self.stack_dir / "logs"

    @property
    def run(self) -> Path:
        return self.stack_dir / "run"


# --------------------------------------------------------------------------- public API


def up(cfg: StackConfig | None = None, *, timeout: float = 120.0, quiet: bool = False) -> dict[str, bool]:
    """Start Kafka and Redis unless already running; wait until both are healthy.

    Returns ``{"kafka": started_now, "redis": started_now}``. Idempotent.
    """
    cfg = cfg or StackConfig.from_env()
    say = (lambda *_: None) if quiet else _say
    for d in (cfg.logs, cfg.run, cfg.stack_dir / "kafka" / "data", cfg.stack_dir / "redis"):
        d.mkdir(parents=True, exist_ok=True)
    fetch_kafka(cfg, quiet=quiet)
    ensure_redis_server(quiet=quiet)
    started = {"kafka": False, "redis": ensure_redis(cfg, say)}
    ensure_tls(cfg, say)
    write_kafka_passwords(cfg)
    pid = _running_pid(cfg, "kafka")
    props = cfg.stack_dir / "kafka" / "server.properties"
    if pid is not None and (not props.exists() or props.read_text() != _server_properties(cfg)):
        say("kafka: running with an older configuration (no SASL_SSL listener?); restarting it")
        _terminate(pid, grace=30.0)
        (cfg.run / "kafka.pid").unlink(missing_ok=True)
    if _running_pid(cfg, "kafka") is None:
        _refuse_taken_port(cfg.kafka_port, "kafka", "LINKY_KAFKA_PORT")
        _refuse_taken_port(cfg.controller_port, "kafka controller", "LINKY_KAFKA_CONTROLLER_PORT")
        _refuse_taken_port(cfg.tls_port, "kafka SASL_SSL listener", "LINKY_KAFKA_TLS_PORT")
        _start_kafka(cfg)
        started["kafka"] = True
        say(f"kafka: started on {cfg.bootstrap_servers}, SASL_SSL on {cfg.tls_bootstrap_servers} "
            f"(Apache Kafka {KAFKA_VERSION}, KRaft)")
    wait_healthy(cfg, timeout=timeout)
    ensure_kafka_security(cfg, say)
    say(f"stack healthy: kafka {cfg.bootstrap_servers}, redis {cfg.redis_url}; data and logs in {cfg.stack_dir}")
    return started


def ensure_redis(cfg: StackConfig, say: Callable[[str], None] = lambda _: None) -> bool:
    """Start redis-server with the ACL file unless ours already runs with it; True if started now.

    A redis of ours running without the ACL file (an older ``.stack/``: the default user still
    answers PING) or with other passwords is restarted: it keeps nothing on disk here, and the
    worker rewrites its snapshot keys when Redis answers again."""
    acl_changed = write_redis_acl(cfg)
    pid = _running_pid(cfg, "redis")
    if pid is not None and (acl_changed or _redis_ping(cfg.redis_port, None, None)):
        say("redis: running without this stack's ACL file; restarting it with ACLs")
        _terminate(pid, grace=10.0)
        (cfg.run / "redis.pid").unlink(missing_ok=True)
    if _running_pid(cfg, "redis") is not None:
        return False
    _refuse_taken_port(cfg.redis_port, "redis", "LINKY_REDIS_PORT")
    _start_redis(cfg)
    say(f"redis: started on 127.0.0.1:{cfg.redis_port}")
    return True


def down(cfg: StackConfig | None = None, *, quiet: bool = False) -> list[str]:
    """Stop exactly the processes this stack started (by pid file). Returns the names stopped."""
    cfg = cfg or StackConfig.from_env()
    stopped = []
    for name in ("kafka", "redis"):
        pid = _running_pid(cfg, name)
        pidfile = cfg.run / f"{name}.pid"
        if pid is not None:
            _terminate(pid, grace=30.0)
            stopped.append(name)
            if not quiet:
                _say(f"{name}: stopped (pid {pid})")
        pidfile.unlink(missing_ok=True)
    return stopped


def status(cfg: StackConfig | None = None) -> dict[str, dict[str, object]]:
    """Report each service: pid (ours, alive) or None, port, healthy."""
    cfg = cfg or StackConfig.from_env()
    return {
        "kafka": {
            "pid": _running_pid(cfg, "kafka"),
            "address": cfg.bootstrap_servers,
            "healthy": _kafka_healthy(cfg),
            "log": str(cfg.logs / "kafka" / "server.log"),
        },
        "redis": {
            "pid": _running_pid(cfg, "redis"),
            "address": f"127.0.0.1:{cfg.redis_port}",
            "healthy": _redis_admin_ping(cfg),
            "log": str(cfg.logs / "redis.log"),
        },
    }


def wait_healthy(cfg: StackConfig, *, timeout: float = 120.0) -> None:
    """Wait until Kafka answers a metadata request and Redis answers PING, or raise StackError."""
    deadline = time.monotonic() + timeout
    checks = {"redis": lambda: _redis_admin_ping(cfg), "kafka": lambda: _kafka_healthy(cfg)}
    logs = {"redis": cfg.logs / "redis.log", "kafka": cfg.logs / "kafka" / "server.log"}
    for name, check in checks.items():
        while not check():
            if _running_pid(cfg, name) is None and not _alive_again(cfg, name):
                raise StackError(f"{name} exited during start-up; see {logs[name]}\n{_tail(logs[name])}")
            if time.monotonic() > deadline:
                raise StackError(
                    f"{name} did not become healthy within {timeout:.0f}s; see {logs[name]}\n{_tail(logs[name])}"
                )
            time.sleep(0.25)


def fetch_kafka(cfg: StackConfig | None = None, *, quiet: bool = False) -> Path:
    """Resolve the pinned Kafka broker and its runtime jars from Maven Central into the cache."""
    cfg = cfg or StackConfig.from_env()
    libs = cfg.kafka_libs
    marker = libs / ".complete"
    if marker.exists():
        return libs
    for tool in ("java", "mvn"):
        if shutil.which(tool) is None:
            raise StackError(f"`{tool}` is not installed: Java 17+ and Maven are needed to run Kafka "
                             f"(Debian: apt-get install openjdk-17-jre-headless maven)")
    if not quiet:
        _say(f"kafka: resolving org.apache.kafka:kafka_2.13:{KAFKA_VERSION} from Maven Central into {libs}")
    tmp = libs.with_name("libs.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    cmd = [
        "mvn", "-B", "-q", "-f", str(HERE / "kafka-pom.xml"),
        f"-Dkafka.version={KAFKA_VERSION}", f"-Dlog4j.version={LOG4J_VERSION}",
        f"{DEPENDENCY_PLUGIN}:copy-dependencies", "-DincludeScope=runtime", f"-DoutputDirectory={tmp}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or not any(tmp.glob(f"kafka_2.13-{KAFKA_VERSION}.jar")):
        raise StackError(f"mvn could not resolve Kafka {KAFKA_VERSION}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    shutil.rmtree(libs, ignore_errors=True)
    tmp.rename(libs)
    marker.write_text(KAFKA_VERSION)
    return libs


def ensure_redis_server(*, quiet: bool = False) -> str:
    """Return the redis-server path, installing Debian's package if it is missing and we are root."""
    path = shutil.which("redis-server") or ("/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None)
    if path:
        return path
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise StackError("redis-server is not installed; install it (Debian: apt-get install redis-server)")
    if not quiet:
        _say("redis: installing Debian package redis-server")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "redis-server"]):
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise StackError(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    path = shutil.which("redis-server") or "/usr/bin/redis-server"
    # Debian's post-install may start its own service on 6379: it is not ours, stop it.
    subprocess.run(["service", "redis-server", "stop"], capture_output=True)
    return path


# Tools the test suite needs beyond the stack: command -> Debian package.
TEST_TOOLS = {"promtool": "prometheus", "prometheus": "prometheus"}
# Debian packages whose post-install starts a system service we never use (tests start their own).
_SERVICES = {"prometheus": "prometheus"}


def ensure_debian_packages(tools: dict[str, str], *, quiet: bool = False) -> dict[str, str]:
    """``{command: package}`` -> ``{command: path}``, installing the missing packages with
    apt-get (root only; otherwise a StackError saying what to install). A service the package
    starts after install (Debian's prometheus on :9090) is stopped and disabled: nothing here
    depends on it, and it would hold a port."""
    missing = sorted({pkg for tool, pkg in tools.items() if shutil.which(tool) is None})
    if missing:
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            raise StackError(f"missing {', '.join(t for t in tools if shutil.which(t) is None)}; install "
                             f"the Debian package(s) as root: apt-get install -y {' '.join(missing)}")
        if not quiet:
            _say(f"installing Debian package(s) {' '.join(missing)}")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        install = ["apt-get", "install", "-y", "-qq", *missing]
        proc = subprocess.run(install, capture_output=True, text=True, env=env)
        if proc.returncode != 0:  # stale package lists: update once, retry
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True, text=True, env=env)
            proc = subprocess.run(install, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise StackError(f"{' '.join(install)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
        for pkg in missing:
            if pkg in _SERVICES:
                stop_system_service(_SERVICES[pkg])
    paths = {}
    for tool in tools:
        path = shutil.which(tool)
        if path is None:
            raise StackError(f"{tool} still not found after installing {tools[tool]}")
        paths[tool] = path
    return paths


def stop_system_service(name: str) -> None:
    """Stop and disable a system service with whatever init tooling exists (systemctl, service,
    or nothing, as in a container); never fails."""
    for cmd in (["systemctl", "disable", "--now", name], ["service", name, "stop"]):
        if shutil.which(cmd[0]):
            try:
                subprocess.run(cmd, capture_output=True, timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                pass


# Debian packages the tests need beyond the stack: the browser tests drive Debian's Chromium with
# its chromedriver (no browser download: the machines reach Debian's mirror, not browser vendors).
TEST_PACKAGES = {"chromium": "chromium", "chromedriver": "chromium-driver"}


def write_redis_acl(cfg: StackConfig) -> bool:
    """Write the passwords (first time, or from env vars) and ``.stack/redis/users.acl``.

    Passwords are kept as SHA-256 in the ACL file (``#<hex>``), in clear only in the 0600 files.
    Returns True when the ACL file changed (a running redis must be restarted to use it)."""
    cfg.secrets_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(cfg.secrets_dir, 0o700)
    lines = ["user default off resetkeys resetchannels -@all"]  # an ACL file has no comments
    for role, user in REDIS_ROLES.items():
        path = cfg.redis_password_file(user)
        password = os.environ.get(f"LINKY_REDIS_PASSWORD_{role.upper()}") or (
            path.read_text().strip() if path.exists() else secrets.token_urlsafe(24))
        if not path.exists() or path.read_text().strip() != password:
            path.touch(mode=0o600)
            os.chmod(path, 0o600)
            path.write_text(password + "\n")
        digest = hashlib.sha256(password.encode()).hexdigest()
        lines.append(f"user {user} on #{digest} {REDIS_USERS[user]}")
    text = "\n".join(lines) + "\n"
    acl = cfg.stack_dir / "redis" / "users.acl"
    acl.parent.mkdir(parents=True, exist_ok=True)
    old = acl.read_text() if acl.exists() else None
    if old != text:
        acl.write_text(text)
        os.chmod(acl, 0o600)
    return old is not None and old != text


def write_kafka_passwords(cfg: StackConfig) -> None:
    """The Kafka SCRAM users' passwords (0600 files; ``LINKY_KAFKA_PASSWORD_<ROLE>`` wins)."""
    cfg.secrets_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(cfg.secrets_dir, 0o700)
    for role, user in KAFKA_ROLES.items():
        path = cfg.kafka_password_file(user)
        password = os.environ.get(f"LINKY_KAFKA_PASSWORD_{role.upper()}") or (
            path.read_text().strip() if path.exists() else secrets.token_urlsafe(24))
        if not path.exists() or path.read_text().strip() != password:
            path.touch(mode=0o600)
            os.chmod(path, 0o600)
            path.write_text(password + "\n")


def ensure_tls(cfg: StackConfig, say: Callable[[str], None] = lambda _: None) -> bool:
    """Generate the stack's CA and the broker's certificate (SAN 127.0.0.1, localhost) with Java's
    keytool on first use; True if generated now. Kept under ``.stack/tls/``; the keystore password
    in ``.stack/secrets/tls-keystore.password``."""
    keystore = cfg.tls_dir / "broker.p12"
    if keystore.exists() and cfg.ca_file.exists():
        return False
    keytool = shutil.which("keytool")
    if keytool is None:
        raise StackError("`keytool` is not installed: it comes with Java 17+ (Debian: apt-get install "
                         "openjdk-17-jre-headless), which Kafka needs anyway")
    tmp = cfg.tls_dir.with_name("tls.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    cfg.secrets_dir.mkdir(parents=True, exist_ok=True)
    pw_file = cfg.secrets_dir / "tls-keystore.password"
    if not pw_file.exists():
        pw_file.touch(mode=0o600)
        pw_file.write_text(secrets.token_urlsafe(24) + "\n")
    pw = pw_file.read_text().strip()
    store = ["-storetype", "PKCS12", "-storepass", pw]
    key = ["-keyalg", "RSA", "-keysize", "2048", "-validity", "3650"]

    def run(*args: str, stdin: bytes | None = None) -> bytes:
        proc = subprocess.run([keytool, *args], input=stdin, capture_output=True)
        if proc.returncode != 0:
            raise StackError(f"keytool {args[0]} failed:\n{proc.stdout[-1500:]!r}\n{proc.stderr[-1500:]!r}")
        return proc.stdout

    ca, broker = str(tmp / "ca.p12"), str(tmp / "broker.p12")
    run("-genkeypair", "-alias", "ca", "-dname", "CN=linky-stream local stack CA", "-ext", "bc:c",
        "-keystore", ca, *store, *key)
    ca_pem = run("-exportcert", "-rfc", "-alias", "ca", "-keystore", ca, *store)
    run("-genkeypair", "-alias", "broker", "-dname", "CN=localhost", "-keystore", broker, *store, *key)
    request = run("-certreq", "-alias", "broker", "-keystore", broker, *store)
    signed = run("-gencert", "-alias", "ca", "-keystore", ca, *store, "-rfc", "-validity", "3650",
                 "-ext", "SAN=ip:127.0.0.1,dns:localhost", "-ext", "EKU=serverAuth", stdin=request)
    (tmp / "ca.pem").write_bytes(ca_pem)
    (tmp / "broker.pem").write_bytes(signed)
    run("-importcert", "-noprompt", "-alias", "ca", "-file", str(tmp / "ca.pem"), "-keystore", broker, *store)
    run("-importcert", "-alias", "broker", "-file", str(tmp / "broker.pem"), "-keystore", broker, *store)
    os.unlink(ca)  # the CA key is not needed any more: nothing else is ever signed with it
    shutil.rmtree(cfg.tls_dir, ignore_errors=True)
    tmp.rename(cfg.tls_dir)
    os.chmod(cfg.tls_dir / "broker.p12", 0o600)
    say(f"kafka: generated the stack's CA and broker certificate in {cfg.tls_dir}")
    return True


def ensure_kafka_security(cfg: StackConfig, say: Callable[[str], None] = lambda _: None) -> bool:
    """Create the SCRAM users and set the ACLs (``KAFKA_ACLS``) on the running broker when they
    changed since the last time (a marker in ``.stack/kafka/``); True if applied now. One JVM
    run (deploy/local/SecureSetup.java, ~3 s) on the first ``up`` only."""
    lines = [f"user\t{user}\t{cfg.kafka_password_file(user)}" for user in KAFKA_ROLES.values()]
    lines += ["acl\t" + "\t".join(acl) for acl in kafka_acls()]
    spec = "\n".join(lines) + "\n"
    passwords = "".join(cfg.kafka_password_file(u).read_text() for u in KAFKA_ROLES.values())
    data_id = (cfg.stack_dir / "kafka" / "data" / "meta.properties").read_bytes()
    digest = hashlib.sha256((spec + passwords).encode() + data_id).hexdigest()
    marker = cfg.stack_dir / "kafka" / "security.applied"
    if marker.exists() and marker.read_text().strip() == digest:
        return False
    spec_file = cfg.stack_dir / "kafka" / "security.spec"
    spec_file.write_text(spec)
    proc = subprocess.run(["java", "-cp", f"{cfg.kafka_libs}/*", str(HERE / "SecureSetup.java"),
                           cfg.bootstrap_servers, str(spec_file)], capture_output=True, text=True, timeout=180)
    if proc.returncode != 0:
        raise StackError(f"creating the Kafka SCRAM users and ACLs failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    marker.write_text(digest + "\n")
    say(f"kafka: {proc.stdout.strip()}")
    return True


# --------------------------------------------------------------------------- processes


def _start_redis(cfg: StackConfig) -> None:
    workdir = cfg.stack_dir / "redis"
    cmd = [
        ensure_redis_server(quiet=True), "--bind", "127.0.0.1", "--port", str(cfg.redis_port),
        "--dir", str(workdir), "--logfile", str(cfg.logs / "redis.log"),
        "--daemonize", "no", "--save", "", "--appendonly", "no", "--protected-mode", "yes",
        "--aclfile", str(workdir / "users.acl"),
    ]
    _spawn(cfg, "redis", cmd, cfg.logs / "redis.out")


def _start_kafka(cfg: StackConfig) -> None:
    kdir = cfg.stack_dir / "kafka"
    props = kdir / "server.properties"
    props.write_text(_server_properties(cfg))
    classpath = f"{cfg.kafka_libs}/*"
    logopts = [f"-Dkafka.logs.dir={cfg.logs / 'kafka'}", f"-Dlog4j2.configurationFile={HERE / 'log4j2.yaml'}"]
    (cfg.logs / "kafka").mkdir(parents=True, exist_ok=True)
    if not (kdir / "data" / "meta.properties").exists():
        fmt = subprocess.run(
            ["java", *logopts, "-cp", classpath, "kafka.tools.StorageTool", "format",
             "-t", _cluster_id(), "-c", str(props), "--ignore-formatted"],
            capture_output=True, text=True,
        )
        if fmt.returncode != 0:
            raise StackError(f"kafka storage format failed:\n{fmt.stdout[-2000:]}\n{fmt.stderr[-2000:]}")
    cmd = [
        "java", "-Xms256m", f"-Xmx{cfg.kafka_heap}", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
        # -XX:-UsePerfData: the JVM otherwise chdirs into /tmp/hsperfdata_$USER for a moment at
        # start-up, and _running_pid (which knows our processes by their cwd) took it for dead
        "-XX:+ExplicitGCInvokesConcurrent", "-XX:-UsePerfData", "-Djava.awt.headless=true", *logopts,
        f"-Dlinky.stack={cfg.stack_dir}", "-cp", classpath, "kafka.Kafka", str(props),
    ]
    _spawn(cfg, "kafka", cmd, cfg.logs / "kafka.out")


def _server_properties(cfg: StackConfig) -> str:
    return "\n".join([
        "# written by deploy/local/stack.py; single-node KRaft broker+controller on 127.0.0.1",
        "process.roles=broker,controller",
        "node.id=1",
        f"controller.quorum.voters=1@127.0.0.1:{cfg.controller_port}",
        f"listeners=PLAINTEXT://127.0.0.1:{cfg.kafka_port},CONTROLLER://127.0.0.1:{cfg.controller_port},"
        f"SASL_SSL://127.0.0.1:{cfg.tls_port}",
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{cfg.kafka_port},SASL_SSL://127.0.0.1:{cfg.tls_port}",
        "inter.broker.listener.name=PLAINTEXT",
        "controller.listener.names=CONTROLLER",
        "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL",
        # TLS + SCRAM-SHA-512 on the second listener; KRaft's StandardAuthorizer denies whatever
        # no ACL allows. ANONYMOUS (the loopback PLAINTEXT listener, and the controller) is super.
        "sasl.enabled.mechanisms=SCRAM-SHA-512",
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config="
        "org.apache.kafka.common.security.scram.ScramLoginModule required;",
        f"ssl.keystore.location={cfg.tls_dir / 'broker.p12'}",
        "ssl.keystore.type=PKCS12",
        f"ssl.keystore.password={_keystore_password(cfg)}",
        "ssl.client.auth=none",
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        f"super.users={';'.join(SUPER_USERS)}",
        "allow.everyone.if.no.acl.found=false",
        f"log.dirs={cfg.stack_dir / 'kafka' / 'data'}",
        "num.partitions=4",
        "offsets.topic.replication.factor=1",
        "offsets.topic.num.partitions=4",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "transaction.state.log.num.partitions=4",
        "share.coordinator.state.topic.replication.factor=1",
        "share.coordinator.state.topic.min.isr=1",
        "group.initial.rebalance.delay.ms=0",
        # Off on purpose: a producer racing a Faust worker would auto-create a topic with the
        # wrong partition count and break co-partitioned tables. Topics are created explicitly.
        "auto.create.topics.enable=false",
        "num.network.threads=2",
        "num.io.threads=2",
        "log.segment.bytes=16777216",
        "",
    ])


def _keystore_password(cfg: StackConfig) -> str:
    try:
        return (cfg.secrets_dir / "tls-keystore.password").read_text().strip()
    except OSError:
        return ""


def _cluster_id() -> str:
    # Same format as Kafka's Uuid.toString(): URL-safe base64 without padding, not starting with '-'.
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cid.startswith("-"):
            return cid


def _spawn(cfg: StackConfig, name: str, cmd: list[str], out: Path) -> None:
    # Each service runs with its working directory inside the stack folder: that is how
    # _running_pid recognises our processes (redis-server rewrites its command line).
    with open(out, "ab") as sink:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT,
                                start_new_session=True, cwd=cfg.stack_dir / name)
    (cfg.run / f"{name}.pid").write_text(f"{proc.pid}\n")


def _running_pid(cfg: StackConfig, name: str) -> int | None:
    """The pid in our pid file if that process is alive and is really ours (not a reused pid)."""
    pidfile = cfg.run / f"{name}.pid"
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None
    if state == "Z":
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        return None
    return pid if cwd == cfg.stack_dir / name or cfg.stack_dir / name in cwd.parents else None


def _alive_again(cfg: StackConfig, name: str, *, wait: float = 0.5) -> bool:
    """A second look before calling a starting service dead: a process can be seen for an instant
    outside its working directory (a JVM's start-up), and only one that stays gone has exited."""
    time.sleep(wait)
    return _running_pid(cfg, name) is not None


def _terminate(pid: int, *, grace: float) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        if not Path(f"/proc/{pid}").exists() or Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _refuse_taken_port(port: int, what: str, env_var: str) -> None:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            raise StackError(
                f"port {port} (for {what}) is already in use by a process this stack did not start; "
                f"stop it or choose another port with {env_var}=..."
            ) from None


# --------------------------------------------------------------------------- health checks


def _redis_ping(port: int, user: str | None, password: str | None) -> bool:
    """PING (after ``AUTH user password`` when a user is given) answered with PONG."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
            if user is not None and password is not None:
                s.sendall(_resp("AUTH", user, password))
                if not s.recv(256).startswith(b"+OK"):
                    return False
            s.sendall(_resp("PING"))
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _redis_admin_ping(cfg: StackConfig) -> bool:
    try:
        password = cfg.redis_password("linky-admin")
    except StackError:
        return False
    return _redis_ping(cfg.redis_port, "linky-admin", password)


def _resp(*args: str) -> bytes:
    out = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def _kafka_healthy(cfg: StackConfig) -> bool:
    """A Metadata request (v12, no topics) answered with our broker listed as node 1."""
    try:
        with socket.create_connection(("127.0.0.1", cfg.kafka_port), timeout=2.0) as s:
            s.settimeout(2.0)
            client_id = b"linky-stack"
            # Request header v2 (flexible): api_key=3 Metadata, version 12, correlation id, client id,
            # empty tagged fields; body: topics=null (compact array -> 0 means null),
            # allow_auto_topic_creation=false, include_topic_authorized_operations=false, tags.
            header = struct.pack(">hhih", 3, 12, 7, len(client_id)) + client_id + b"\x00"
            body = b"\x00" + b"\x00" + b"\x00" + b"\x00"
            payload = header + body
            s.sendall(struct.pack(">i", len(payload)) + payload)
            size = struct.unpack(">i", _recv_exact(s, 4))[0]
            data = _recv_exact(s, size)
    except (OSError, struct.error):
        return False
    # Response header v1: correlation id + tagged fields; body: throttle_time_ms, brokers compact array.
    if struct.unpack(">i", data[:4])[0] != 7:
        return False
    brokers_plus_one = data[4 + 1 + 4]
    return brokers_plus_one >= 2  # at least one broker registered


def _recv_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise OSError("connection closed")
        buf += chunk
    return buf


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"({path} does not exist)"


def _say(msg: str) -> None:
    print(f"[stack] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.local", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["up", "down", "status", "reset", "fetch", "env", "deps"])
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for health (up)")
    args = parser.parse_args(argv)
    cfg = StackConfig.from_env()
    try:
        if args.command == "up":
            up(cfg, timeout=args.timeout)
        elif args.command == "down":
            if not down(cfg):
                _say("nothing of ours was running")
        elif args.command == "reset":
            down(cfg, quiet=True)
            shutil.rmtree(cfg.stack_dir, ignore_errors=True)
            _say(f"removed {cfg.stack_dir}")
        elif args.command == "fetch":
            print(fetch_kafka(cfg))
        elif args.command == "deps":  # what the tests need besides the stack (make test)
            fetch_kafka(cfg)
            ensure_redis_server()
            for tool, path in ensure_debian_packages({**TEST_TOOLS, **TEST_PACKAGES}).items():
                print(f"{tool}: {path}")
        elif args.command == "env":
            for user in ("linky-worker", "linky-edge"):
                print(f"# SASL_SSL as {user}: " + " ".join(f"{k}={v}" for k, v in cfg.kafka_client_env(user).items()))
            print(f"LINKY_KAFKA_BOOTSTRAP={cfg.bootstrap_servers}\nLINKY_REDIS_URL={cfg.redis_url}\n"
                  f"LINKY_REDIS_USERNAME=linky-worker\n"
                  f"LINKY_REDIS_PASSWORD_FILE={cfg.redis_password_file('linky-worker')}\n"
                  f"LINKY_PORTAL_REDIS_URL={cfg.redis_url}\nLINKY_PORTAL_REDIS_USERNAME=linky-portal\n"
                  f"LINKY_PORTAL_REDIS_PASSWORD_FILE={cfg.redis_password_file('linky-portal')}")
        else:
            ok = True
            for name, st in status(cfg).items():
                state = f"running (pid {st['pid']})" if st["pid"] else "not running (ours)"
                print(f"{name:6} {state:28} {st['address']:22} healthy={st['healthy']}  log={st['log']}")
                ok = ok and bool(st["pid"]) and bool(st["healthy"])
            return 0 if ok else 3
    except StackError as exc:
        print(f"[stack] ERROR: {exc}", file=sys.stderr)
        return 1
    return 0
