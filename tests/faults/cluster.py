"""The system under fault: an embedded PostgreSQL and broker on loopback ports, and every service as processes
of its own (N instances each) that can be killed, restarted armed with a forced crash point, and measured.

Each instance keeps its port across restarts, so clients and probes find it again. A process that dies is
noticed by `reap()`, which says whether it died at a forced crash point (shared.platform.faults prints the point's name
before exiting) or otherwise, and starts it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import psutil

from deploy.embedded.ports import free_port
from deploy.embedded.stack import EmbeddedStack
from shared.platform.keyfiles import generate_signing_key
from shared.security.auth import Role, mint_token

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class ServiceKind:
    """One kind of process: its module, the variable that sets its port, and its mode settings."""

    name: str
    module: str
    port_variable: str
    environment: tuple[tuple[str, str], ...] = ()
    forced_points: tuple[str, ...] = ()
    """Forced crash points this kind of process reaches under the harness's load."""


KINDS = (
    # Ingest's HTTP side and its record-store consumers run apart, as INGEST_MODE allows and as one scales them.
    ServiceKind(
        "ingest-http",
        "services.ingest",
        "INGEST_PORT",
        (("INGEST_MODE", "http"),),
        # Between the broker's acknowledgement and the ledger's commit: the client hears nothing and resends.
        ("ingest.after_broker_ack",),
    ),
    ServiceKind(
        "ingest-consumers",
        "services.ingest",
        "INGEST_PORT",
        (("INGEST_MODE", "consumers"),),
        # Between the database commit and the offset commit: the batch comes again.
        ("ingest-record-store.after_db_commit",),
    ),
    ServiceKind(
        "retention",
        "services.retention",
        "RETENTION_PORT",
        (),
        (
            "retention-scheduler.after_db_commit",
            # Keys destroyed and rows removed in the open transaction, the certificate not yet written.
            "retention.after_shred",
            "retention.before_commit",
            # The deletion committed, its outbox event not yet published.
            "retention.after_commit",
            # Outbox rows read, not yet published; then published, not yet removed.
            "outbox.before_publish",
            "outbox.after_publish",
        ),
    ),
    ServiceKind("dsr", "services.dsr", "DSR_PORT", (), ("outbox.before_publish",)),
    ServiceKind("export", "services.export", "EXPORT_PORT", (), ("audit-relay.after_publish",)),
)


@dataclass
class Death:
    """A process that ended: at a forced crash point (`point`), by the harness's kill -9, or on its own."""

    instance: str
    cause: str
    point: str | None
    at: float


@dataclass
class Instance:
    kind: ServiceKind
    number: int
    port: int
    log_file: Path
    process: subprocess.Popen[bytes] | None = None
    armed: str = ""
    killed_by_harness: bool = False
    started_at: float = 0.0
    log_offset: int = 0
    """Where this incarnation's lines begin in the log file."""
    rss_samples: list[int] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.kind.name}-{self.number}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


class Cluster:
    """Start with `start()`, stop with `stop()`; everything listens on 127.0.0.1 only."""

    def __init__(self, workdir: Path, *, instances: int = 1, settings: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.stack = EmbeddedStack(workdir / "stack", pg_port=free_port(), kafka_port=free_port())
        self.env: dict[str, str] = {}
        self.extra = settings or {}
        self.instances = [
            Instance(kind, number, free_port(), workdir / "logs" / f"{kind.name}-{number}.log")
            for kind in KINDS
            for number in range(1, instances + 1)
        ]
        self.deaths: list[Death] = []
        self.token = ""
        self._broker_paused = False

    # ------------------------------------------------------------------------------------------- lifecycle

    def start(self) -> None:
        (self.workdir / "logs").mkdir(parents=True, exist_ok=True)
        self.stack.start()
        private, public = self.workdir / "auth-private.pem", self.workdir / "auth-public.pem"
        generate_signing_key(private, public)
        self.token = mint_token(
            private.read_bytes(),
            issuer="sailo-local",
            audience="sailo",
            role=Role.PLATFORM,
            subject="fault-harness",
            ttl_seconds=24 * 3600,
        )
        inherited = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("SAILO_", "DATABASE_", "KAFKA_", "AUTH_", "INGEST_", "RETENTION_"))
        }
        self.env = {
            **inherited,
            **self.stack.environment(),
            "SAILO_DATA_DIR": str(self.workdir / "data"),
            "AUTH_PUBLIC_KEY_FILE": str(public),
            "LOG_LEVEL": "WARNING",
            "LOG_FORMAT": "json",
            # A broker that does not answer is reported (503) after 3 s instead of the default 10.
            "KAFKA_REQUEST_TIMEOUT_MS": "3000",
            # The harness is one platform sending as fast as it can; the rate limit is not under test here.
            "INGEST_RATE_LIMIT_PER_SECOND": "1000000",
            "INGEST_RATE_LIMIT_BURST": "10000000",
            "RETENTION_SWEEP_INTERVAL_SECONDS": "1",
            **self.extra,
        }
        subprocess.run(
            [sys.executable, "-m", "shared.platform.db", "upgrade"], env=self.env, cwd=ROOT, check=True
        )
        for instance in self.instances:
            self.spawn(instance)
        deadline = time.monotonic() + 180
        for instance in self.instances:
            if not self.wait_ready(instance, deadline - time.monotonic()):
                raise RuntimeError(f"{instance.name} did not become ready; see {instance.log_file}")

    def stop(self) -> None:
        self.resume_broker()
        for instance in self.instances:
            if instance.alive():
                assert instance.process is not None
                instance.process.terminate()
        for instance in self.instances:
            if instance.process is not None:
                try:
                    instance.process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    instance.process.kill()
                    instance.process.wait()
        self.stack.stop()

    def spawn(self, instance: Instance, *, armed: str = "") -> None:
        env = {
            **self.env,
            **dict(instance.kind.environment),
            instance.kind.port_variable: str(instance.port),
            "SAILO_FAULTS": armed,
        }
        log = instance.log_file.open("ab")
        instance.log_offset = log.tell()
        instance.process = subprocess.Popen(
            [sys.executable, "-m", instance.kind.module],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        instance.armed = armed
        instance.killed_by_harness = False
        instance.started_at = time.monotonic()

    def wait_ready(self, instance: Instance, timeout: float) -> bool:
        deadline = time.monotonic() + max(timeout, 0.0)
        while time.monotonic() < deadline:
            if not instance.alive():
                return False
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{instance.url}/readyz", timeout=2).status_code == 200:
                    return True
            time.sleep(0.2)
        return False

    async def wait_ready_async(self, instance: Instance, timeout: float) -> bool:
        return await asyncio.to_thread(self.wait_ready, instance, timeout)

    # ------------------------------------------------------------------------------------------- faults

    def kill(self, instance: Instance) -> None:
        """kill -9: no clean-up of any kind runs in the process."""
        if instance.process is not None and instance.alive():
            instance.killed_by_harness = True
            instance.process.send_signal(signal.SIGKILL)
            instance.process.wait()

    def reap(self) -> list[Death]:
        """The processes that ended since the last call, each started again (unarmed)."""
        ended = []
        for instance in self.instances:
            if instance.process is None or instance.alive():
                continue
            point = _forced_point(instance.log_file, instance.log_offset)
            if instance.killed_by_harness:
                cause = "kill -9"
            elif point is not None and point in instance.armed:
                cause = "forced crash point"
            else:
                cause = f"exit {instance.process.returncode}"
                point = None
            death = Death(instance.name, cause, point, time.monotonic())
            ended.append(death)
            self.deaths.append(death)
            self.spawn(instance)
        return ended

    def pause_broker(self) -> None:
        """The broker stops answering: connections stay open, nothing comes back (a network partition)."""
        pid = self.stack.broker.pid
        if pid is not None and not self._broker_paused:
            os.kill(pid, signal.SIGSTOP)
            self._broker_paused = True

    def resume_broker(self) -> None:
        pid = self.stack.broker.pid
        if pid is not None and self._broker_paused:
            os.kill(pid, signal.SIGCONT)
            self._broker_paused = False

    def restart_postgres(self) -> None:
        self.stack.postgres.stop()
        self.stack.postgres.start()

    async def terminate_connections(self) -> int:
        """Ends every other session of the database, as a failover or an administrator would."""
        connection = await asyncpg.connect(self.dsn)
        try:
            return len(
                await connection.fetch(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
        finally:
            await connection.close()

    # ------------------------------------------------------------------------------------------- reading

    @property
    def dsn(self) -> str:
        return self.env["DATABASE_URL"].replace("postgresql+asyncpg://", "postgresql://")

    @property
    def bootstrap_servers(self) -> str:
        return self.env["KAFKA_BOOTSTRAP_SERVERS"]

    def of_kind(self, name: str) -> list[Instance]:
        return [i for i in self.instances if i.kind.name == name]

    def sample_memory(self) -> None:
        """Each live process's resident memory, for the soak's report."""
        for instance in self.instances:
            if instance.alive():
                assert instance.process is not None
                with contextlib.suppress(psutil.Error):
                    instance.rss_samples.append(psutil.Process(instance.process.pid).memory_info().rss)


def _forced_point(log_file: Path, offset: int) -> str | None:
    """The point named by a 'fault injected at X' line of one incarnation's log (from `offset`), if any."""
    try:
        with log_file.open("rb") as stream:
            stream.seek(max(offset, log_file.stat().st_size - 65536))
            tail = stream.read().decode(errors="replace")
    except OSError:
        return None
    marker = "fault injected at "
    position = tail.rfind(marker)
    if position < 0:
        return None
    return tail[position + len(marker) :].split("\n", 1)[0].strip()
