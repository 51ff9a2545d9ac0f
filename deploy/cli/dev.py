"""`sailo dev`: PostgreSQL, the broker and the four services on this machine until Ctrl-C."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

SERVICES = (
    ("ingest", "INGEST_PORT", 8001),
    ("retention", "RETENTION_PORT", 8002),
    ("dsr", "DSR_PORT", 8003),
    ("export", "EXPORT_PORT", 8004),
)


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _wait_healthy(
    port: int, process: subprocess.Popen[bytes], stopping: Callable[[], bool], timeout: float = 90.0
) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None or stopping():
            return False
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.3)
    return False


def cmd_dev(args: argparse.Namespace) -> int:
    from deploy.embedded.errors import EmbeddedError
    from deploy.embedded.stack import EmbeddedStack
    from shared.security.auth import local_issuer_keys

    data_dir = Path(os.environ.get("SAILO_DATA_DIR", ".sailo")).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.setdefault("SAILO_DATA_DIR", str(data_dir))
    env.setdefault("SAILO_ENV", "development")
    env.setdefault("LOG_FORMAT", "console" if sys.stdout.isatty() else "json")

    for name, variable, default in SERVICES:
        port = int(env.get(variable, default))
        if not _port_free(port):
            print(
                f"sailo dev: port {port} for the {name} service is already in use; "
                f"stop what holds it or set {variable} to another port",
                file=sys.stderr,
            )
            return 1

    processes: list[tuple[str, int, subprocess.Popen[bytes]]] = []
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    # Handlers first: a Ctrl-C at any moment below still runs the clean-up in `finally`.
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    stack = None
    exit_code = 0
    try:
        if not env.get("DATABASE_URL") or not env.get("KAFKA_BOOTSTRAP_SERVERS"):
            try:
                stack = EmbeddedStack(
                    data_dir,
                    pg_port=args.pg_port,
                    kafka_port=args.kafka_port,
                    pg_port_option="--pg-port (or SAILO_PG_PORT)",
                    kafka_port_option="--kafka-port (or SAILO_KAFKA_PORT)",
                )
                stack.start()
            except (EmbeddedError, ValueError) as exc:
                print(f"sailo dev: {exc}", file=sys.stderr)
                return 1
            for key, value in stack.environment().items():
                if key in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "KAFKA_ENABLE_IDEMPOTENCE") and env.get(
                    key
                ):
                    continue
                env[key] = value
            env["SAILO_DATA_DIR"] = str(data_dir)

        _private, public = local_issuer_keys(data_dir)
        env.setdefault("AUTH_PUBLIC_KEY_FILE", str(public))
        if stopping:
            return 0
        subprocess.run([sys.executable, "-m", "shared.platform.db", "upgrade"], env=env, check=True)
        logs = data_dir / "logs"
        logs.mkdir(exist_ok=True)
        for name, variable, default in SERVICES:
            port = int(env.get(variable, default))
            log_file = (logs / f"{name}.log").open("ab")
            process = subprocess.Popen(
                [sys.executable, "-m", f"services.{name}"], env=env, stdout=log_file, stderr=subprocess.STDOUT
            )
            processes.append((name, port, process))
        for name, port, process in processes:
            if not _wait_healthy(port, process, lambda: stopping):
                if stopping:
                    return 0
                print(
                    f"sailo dev: the {name} service did not become ready; see {logs / (name + '.log')}",
                    file=sys.stderr,
                )
                return 1
        print("Sailo is running (Ctrl-C stops everything):")
        for name, port, _process in processes:
            print(f"  {name:<10} http://127.0.0.1:{port}   docs http://127.0.0.1:{port}/docs")
        if stack is not None:
            print(f"  postgres   {stack.database_url}")
            print(f"  broker     {stack.bootstrap_servers}")
        print(f"  logs       {logs}/")
        print("  token      .venv/bin/sailo token --role platform")
        sys.stdout.flush()
        while not stopping:
            for name, _port, process in processes:
                if process.poll() is not None:
                    print(
                        f"sailo dev: the {name} service exited ({process.returncode}); stopping everything",
                        file=sys.stderr,
                    )
                    stopping = True
                    exit_code = 1
            time.sleep(0.5)
        return exit_code
    finally:
        for _name, _port, process in processes:
            if process.poll() is None:
                process.terminate()
        for _name, _port, process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        if stack is not None:
            stack.stop()
        print("Sailo stopped.")
