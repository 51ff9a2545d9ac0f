"""Loopback ports: free ones for tests, and the check that a port the stack needs is not held by anything else."""

from __future__ import annotations

import errno
import socket

import psutil

from deploy.embedded.errors import EmbeddedError

HOST = "127.0.0.1"


class PortInUse(EmbeddedError):
    """A port the stack needs is held by another process. Raised before anything is started."""

    def __init__(self, port: int, component: str, option: str, holder: str | None = None) -> None:
        self.port = port
        self.component = component
        self.option = option
        self.holder = holder
        held_by = f" by {holder}" if holder else ""
        super().__init__(
            f"port {port} on {HOST}, needed by the embedded {component}, is already in use{held_by}; "
            f"stop that process or choose another port with {option}"
        )


_handed_out_ports: set[int] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now and that this process has not handed out before."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((HOST, 0))
            port = int(sock.getsockname()[1])
        if port not in _handed_out_ports:
            _handed_out_ports.add(port)
            return port
    raise EmbeddedError("could not find a free TCP port on 127.0.0.1")


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR: a connection lingering in TIME_WAIT does not count, a listening socket does.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def _port_holder(port: int) -> str | None:
    """Best effort "pid 123 (nginx)" for the process listening on port."""
    try:
        connections = psutil.net_connections(kind="tcp")
    except (psutil.AccessDenied, OSError):
        return None
    for conn in connections:
        if conn.status == psutil.CONN_LISTEN and conn.laddr and int(conn.laddr.port) == port:
            if conn.pid is None:
                return None
            try:
                return f"pid {conn.pid} ({psutil.Process(conn.pid).name()})"
            except psutil.Error:
                return f"pid {conn.pid}"
    return None


def check_port(port: int, component: str, option: str) -> None:
    if not _port_is_free(port):
        raise PortInUse(port, component, option, _port_holder(port))


def validate_port(port: int, name: str) -> int:
    if not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValueError(f"{name} must be a TCP port number (1-65535), got {port!r}")
    return port
