"""End to end: `sailo dev` (what `make run` runs) as an operator uses it, on free ports in a temporary data dir.

The command runs as its own process in its own session (as in a terminal), with the embedded PostgreSQL and
Tansu broker, and is checked from the outside only: the URLs it prints, the four services' probes, events
posted with tokens from `sailo token`, Ctrl-C and SIGTERM, a restart on the same data dir, and the message
for a port that is already taken. Waits are bounded by deadlines and attempt counts; nothing asserts on time.

The first four tests share one data dir and run in file order: the first start serves the first two tests,
the third stops it with Ctrl-C, the fourth starts again on the same data dir.
"""

from __future__ import annotations

import contextlib
import copy
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from deploy.embedded.ports import free_port
from deploy.embedded.stack import EmbeddedStack
from shared.contracts.events import EVENT_TYPES

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SERVICES = {
    "ingest": "INGEST_PORT",
    "retention": "RETENTION_PORT",
    "dsr": "DSR_PORT",
    "export": "EXPORT_PORT",
}
# Settings the test must not inherit from the shell that runs it.
DROPPED_VARIABLES = ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "AUTH_PUBLIC_KEY_FILE", "AUTH_JWKS_URL")

START_TIMEOUT = 240.0  # a first start creates the cluster, migrates and starts four services
STOP_TIMEOUT = 150.0  # sailo dev gives each service 15 s, the broker 10 s and PostgreSQL 30 s to stop
FAIL_TIMEOUT = 120.0  # a start refused for a taken port
READ_ATTEMPTS = 240  # polls for the record store to catch up (0.5 s apart)
URL_LINE = re.compile(r"^\s+(ingest|retention|dsr|export)\s+(http://127\.0\.0\.1:(\d+))\s")


# ----------------------------------------------------------------------------------------------- helpers


def dev_environment(data_dir: Path, ports: dict[str, int]) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in DROPPED_VARIABLES and not key.startswith("SAILO_")
    }
    env.update({variable: str(port) for variable, port in ports.items()})
    env["SAILO_DATA_DIR"] = str(data_dir)
    env["LOG_FORMAT"] = "json"
    return env


def new_ports() -> dict[str, int]:
    return {name: free_port() for name in (*SERVICES.values(), "SAILO_PG_PORT", "SAILO_KAFKA_PORT")}


def port_is_free(port: int) -> bool:
    """As sailo dev checks: a listening socket makes it busy, a connection in TIME_WAIT does not."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def hold_port(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen()
    return sock


def _in_data_dir(path: str, data_dir: Path) -> bool:
    return path == str(data_dir) or path.startswith(f"{data_dir}/")


def processes_of(data_dir: Path, known: Sequence[psutil.Process] = ()) -> list[psutil.Process]:
    """Live processes that belong to a run on data_dir: those known to be its children, and any process with
    the data dir in its command line (the postmaster) or as its working directory (broker, PostgreSQL)."""
    found: dict[int, psutil.Process] = {}
    for proc in known:
        with contextlib.suppress(psutil.Error):
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                found[proc.pid] = proc
    for proc in psutil.process_iter(["cmdline", "cwd", "status"]):
        info = proc.info
        if info.get("status") == psutil.STATUS_ZOMBIE:
            continue
        args = info.get("cmdline") or []
        cwd = info.get("cwd") or ""
        if any(_in_data_dir(str(arg), data_dir) for arg in args) or _in_data_dir(str(cwd), data_dir):
            found[proc.pid] = proc
    found.pop(os.getpid(), None)
    return list(found.values())


def describe(procs: list[psutil.Process]) -> list[str]:
    described = []
    for proc in procs:
        try:
            described.append(f"{proc.pid} {' '.join(proc.cmdline())[:160]}")
        except psutil.Error:
            described.append(f"{proc.pid} (gone)")
    return described


def mint_token(env: dict[str, str], role: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "deploy.cli", "token", "--role", role],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"sailo token --role {role} failed: {result.stderr}"
    token = result.stdout.strip()
    assert token.count(".") == 2, f"not a JWT: {token!r}"
    return token


class Dev:
    """One `sailo dev` process in its own session, its stdout and stderr read by threads."""

    def __init__(self, data_dir: Path, env: dict[str, str], *args: str) -> None:
        self.data_dir = data_dir
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self.children: list[psutil.Process] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "deploy.cli", "dev", *args],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # like a terminal: Ctrl-C goes to its process group, not to pytest
        )
        assert self.process.stdout is not None and self.process.stderr is not None
        self._threads = [
            threading.Thread(target=self._pump, args=(self.process.stdout, self.stdout, True), daemon=True),
            threading.Thread(target=self._pump, args=(self.process.stderr, self.stderr, False), daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _pump(self, stream: Any, lines: list[str], to_queue: bool) -> None:
        for line in stream:
            lines.append(line.rstrip("\n"))
            if to_queue:
                self._lines.put(line.rstrip("\n"))
        if to_queue:
            self._lines.put(None)

    def wait_for_urls(self, timeout: float = START_TIMEOUT) -> dict[str, str]:
        """The service URLs the banner prints, read line by line until all four are there."""
        urls: dict[str, str] = {}
        deadline = time.monotonic() + timeout
        while len(urls) < len(SERVICES):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"sailo dev printed no URLs within {timeout:.0f} s\n{self.diagnostics()}")
            try:
                line = self._lines.get(timeout=min(remaining, 1.0))
            except queue.Empty:
                continue
            if line is None:
                self.process.wait(timeout=30)
                pytest.fail(
                    f"sailo dev exited ({self.process.returncode}) before printing its URLs\n{self.diagnostics()}"
                )
            if match := URL_LINE.match(line):
                urls[match.group(1)] = match.group(2)
        with contextlib.suppress(psutil.Error):
            self.children = psutil.Process(self.process.pid).children(recursive=True)
        return urls

    def wait_exit(self, timeout: float) -> int:
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"sailo dev did not exit within {timeout:.0f} s\n{self.diagnostics()}")
        for thread in self._threads:
            thread.join(timeout=10)
        return code

    def interrupt(self) -> None:
        """Ctrl-C in the terminal: SIGINT to the whole foreground process group."""
        os.killpg(self.process.pid, signal.SIGINT)

    def diagnostics(self) -> str:
        parts = ["--- stdout", *self.stdout, "--- stderr", *self.stderr]
        logs = [*sorted((self.data_dir / "logs").glob("*.log")), self.data_dir / "postgres.log"]
        for log in [*logs, self.data_dir / "broker.log"]:
            with contextlib.suppress(OSError):
                parts += [f"--- {log}", *log.read_text(errors="replace").splitlines()[-15:]]
        return "\n".join(parts)

    def _group(self) -> list[psutil.Process]:
        """What is left of its process group (the services, should sailo dev itself have died)."""
        members = []
        for proc in psutil.process_iter():
            with contextlib.suppress(OSError, psutil.Error):
                if proc.pid != os.getpid() and os.getpgid(proc.pid) == self.process.pid:
                    members.append(proc)
        return members

    def close(self) -> None:
        """Stops whatever is left, however the test ended: the process group (SIGTERM, then SIGKILL), then
        the embedded stack of the data dir, then any process still working in the data dir."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)
        reap(self.data_dir, [*self.children, *self._group()])
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


def reap(data_dir: Path, known: Sequence[psutil.Process] = ()) -> None:
    left = processes_of(data_dir, known)
    if not left:
        return
    with contextlib.suppress(Exception):
        EmbeddedStack(data_dir).stop()  # pg_ctl stop for the cluster, and the broker stack.json records
    left = processes_of(data_dir, known)
    for proc in left:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    _gone, alive = psutil.wait_procs(left, timeout=10)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(alive, timeout=10)


def poll(attempts: int, check: Callable[[], bool], interval: float = 0.5) -> bool:
    for _ in range(attempts):
        if check():
            return True
        time.sleep(interval)
    return False


# ------------------------------------------------------------------------------------- start, use, stop


@dataclass
class Lifecycle:
    data_dir: Path
    ports: dict[str, int]
    env: dict[str, str]
    runs: list[Dev] = field(default_factory=list)
    contacts: list[tuple[str, str]] = field(default_factory=list)  # (contact_id, register) ingested in run 1
    first_run_stopped: bool = False

    def start(self) -> Dev:
        dev = Dev(self.data_dir, self.env)
        self.runs.append(dev)
        return dev

    def url(self, service: str, path: str = "") -> str:
        return f"http://127.0.0.1:{self.ports[SERVICES[service]]}{path}"

    def assert_stopped_cleanly(self, dev: Dev, code: int) -> None:
        assert code == 0, f"sailo dev exited with {code}\n{dev.diagnostics()}"
        assert "Sailo stopped." in dev.stdout, dev.diagnostics()
        assert not any("Traceback" in line for line in dev.stderr), dev.diagnostics()
        left = processes_of(self.data_dir, dev.children)
        assert not left, f"still running after sailo dev exited: {describe(left)}"
        busy = {name: port for name, port in self.ports.items() if not port_is_free(port)}
        assert not busy, f"ports still in use after sailo dev exited: {busy}"


@pytest.fixture(scope="module")
def lifecycle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lifecycle]:
    data_dir = tmp_path_factory.mktemp("sailo-dev").resolve()
    ports = new_ports()
    state = Lifecycle(data_dir, ports, dev_environment(data_dir, ports))
    try:
        yield state
    finally:
        for dev in state.runs:
            dev.close()
        reap(data_dir)


@pytest.fixture(scope="module")
def first_run(lifecycle: Lifecycle) -> Iterator[tuple[Dev, dict[str, str]]]:
    dev = lifecycle.start()
    try:
        urls = dev.wait_for_urls()
        yield dev, urls
    finally:
        dev.close()


def test_prints_the_four_urls_and_every_service_answers(
    lifecycle: Lifecycle, first_run: tuple[Dev, dict[str, str]]
) -> None:
    dev, urls = first_run
    assert urls == {name: lifecycle.url(name) for name in SERVICES}, dev.diagnostics()
    answers = {}
    with httpx.Client(timeout=10) as client:
        for name, url in urls.items():
            for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
                answers[f"{name} {path}"] = client.get(f"{url}{path}").status_code
    assert answers == dict.fromkeys(answers, 200), dev.diagnostics()


def test_accepts_every_openapi_example_and_stores_it(
    lifecycle: Lifecycle, first_run: tuple[Dev, dict[str, str]]
) -> None:
    dev, _urls = first_run
    platform = {"Authorization": f"Bearer {mint_token(lifecycle.env, 'platform')}"}
    with httpx.Client(timeout=30) as client:
        document = client.get(lifecycle.url("ingest", "/openapi.json")).json()
        examples = document["paths"]["/v1/events"]["post"]["requestBody"]["content"]["application/json"][
            "examples"
        ]
        assert {example["value"]["type"] for example in examples.values()} == set(EVENT_TYPES)

        answers: dict[str, tuple[int, str]] = {}
        sent: list[tuple[str, str]] = []
        # Dated a few minutes ago: the examples' own date is months back, past some registers' retention, and
        # the running sweeper would delete such a contact before it could be read.
        recent = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
        for name, example in examples.items():
            event = copy.deepcopy(example["value"])
            event["event_id"] = str(uuid.uuid4())
            event["contact_id"] = f"e2e-{uuid.uuid4().hex[:12]}"
            event["occurred_at"] = recent
            response = client.post(lifecycle.url("ingest", "/v1/events"), json=event, headers=platform)
            answers[name] = (response.status_code, response.text[:300])
            sent.append((event["contact_id"], event["register"]))
        assert {name: status for name, (status, _) in answers.items()} == dict.fromkeys(answers, 202), answers

        manager = {"Authorization": f"Bearer {mint_token(lifecycle.env, 'manager')}"}
        pending = dict(sent)
        last: dict[str, int] = {}

        def all_readable() -> bool:
            for contact_id, register in list(pending.items()):
                response = client.get(
                    lifecycle.url("ingest", f"/v1/contacts/{contact_id}"),
                    params={"register": register},
                    headers=manager,
                )
                last[contact_id] = response.status_code
                if response.status_code == 200:
                    assert response.json()["contact_id"] == contact_id
                    del pending[contact_id]
            return not pending

        assert poll(READ_ATTEMPTS, all_readable), f"not readable: {last}\n{dev.diagnostics()}"

        # The sweeper runs on the embedded stack: a chat backfilled from past Statistics Finland's 35 days is
        # deleted at the next sweep, and its certificate can be read.
        expired = copy.deepcopy(examples["chat.message"]["value"])
        expired.update(
            event_id=str(uuid.uuid4()),
            contact_id=f"e2e-expired-{uuid.uuid4().hex[:8]}",
            register="statfi-chat",
            occurred_at=(datetime.now(UTC) - timedelta(days=60)).isoformat(),
        )
        posted = client.post(lifecycle.url("ingest", "/v1/events"), json=expired, headers=platform)
        assert posted.status_code == 202, posted.text
        auditor = {"Authorization": f"Bearer {mint_token(lifecycle.env, 'auditor')}"}

        def certified() -> bool:
            response = client.get(
                lifecycle.url("retention", "/v1/certificates"),
                params={"register": "statfi-chat"},
                headers=auditor,
            )
            return response.status_code == 200 and bool(response.json()["certificates"])

        assert poll(READ_ATTEMPTS, certified), f"no certificate\n{dev.diagnostics()}"
    lifecycle.contacts = sent


def test_ctrl_c_stops_everything(lifecycle: Lifecycle, first_run: tuple[Dev, dict[str, str]]) -> None:
    dev, _urls = first_run
    assert dev.children, "sailo dev had no child processes to watch"
    postmaster = (lifecycle.data_dir / "postgres" / "postmaster.pid").read_text().split()[0]
    watched = [*dev.children, psutil.Process(int(postmaster))]
    dev.children = watched
    dev.interrupt()
    code = dev.wait_exit(STOP_TIMEOUT)
    lifecycle.assert_stopped_cleanly(dev, code)
    lifecycle.first_run_stopped = True


def test_a_second_start_reuses_the_data_dir_and_stops_on_sigterm(lifecycle: Lifecycle) -> None:
    if not (lifecycle.first_run_stopped and lifecycle.contacts):
        pytest.skip("needs the first run: its contacts and its clean stop")
    cluster_created = (lifecycle.data_dir / "postgres" / "PG_VERSION").stat().st_mtime_ns
    dev = lifecycle.start()
    try:
        urls = dev.wait_for_urls()
        assert urls == {name: lifecycle.url(name) for name in SERVICES}, dev.diagnostics()
        assert (lifecycle.data_dir / "postgres" / "PG_VERSION").stat().st_mtime_ns == cluster_created

        contact_id, register = lifecycle.contacts[0]
        manager = {"Authorization": f"Bearer {mint_token(lifecycle.env, 'manager')}"}
        with httpx.Client(timeout=30) as client:
            response = client.get(
                lifecycle.url("ingest", f"/v1/contacts/{contact_id}"),
                params={"register": register},
                headers=manager,
            )
        assert response.status_code == 200, f"{response.text}\n{dev.diagnostics()}"
        assert response.json()["contact_id"] == contact_id
        assert response.json()["events"], response.text

        postmaster = (lifecycle.data_dir / "postgres" / "postmaster.pid").read_text().split()[0]
        dev.children = [*dev.children, psutil.Process(int(postmaster))]
        dev.process.send_signal(signal.SIGTERM)  # `kill PID`, as a service manager stops it
        code = dev.wait_exit(STOP_TIMEOUT)
        lifecycle.assert_stopped_cleanly(dev, code)
    finally:
        dev.close()


# ------------------------------------------------------------------------------------------ taken ports


@pytest.mark.parametrize(
    ("taken", "option"),
    [("INGEST_PORT", "INGEST_PORT"), ("SAILO_PG_PORT", "--pg-port")],
    ids=["ingest", "pg"],
)
def test_a_taken_port_is_named_with_the_setting_that_moves_it(
    tmp_path_factory: pytest.TempPathFactory, taken: str, option: str
) -> None:
    data_dir = tmp_path_factory.mktemp("sailo-dev-taken").resolve()
    ports = new_ports()
    env = dev_environment(data_dir, ports)
    args: tuple[str, ...] = ()
    if taken == "SAILO_PG_PORT":
        # The flag, not the variable, chooses the port here: the message has to name the flag.
        ports[taken] = free_port()
        args = ("--pg-port", str(ports[taken]))
    holder = hold_port(ports[taken])
    dev = Dev(data_dir, env, *args)
    try:
        code = dev.wait_exit(FAIL_TIMEOUT)
        stderr = "\n".join(dev.stderr)
        assert code != 0, dev.diagnostics()
        assert str(ports[taken]) in stderr, dev.diagnostics()
        assert option in stderr, dev.diagnostics()
        assert "Sailo is running" not in "\n".join(dev.stdout), dev.diagnostics()
        assert not any("Traceback" in line for line in dev.stderr), dev.diagnostics()
        left = processes_of(data_dir)
        assert not left, f"a refused start left processes behind: {describe(left)}"
        busy = {name: port for name, port in ports.items() if name != taken and not port_is_free(port)}
        assert not busy, f"a refused start left ports in use: {busy}"
    finally:
        holder.close()
        dev.close()
