"""The `sailo` command: run the whole system locally, mint development tokens, migrate, export contracts.

sailo dev                 PostgreSQL + broker (embedded unless DATABASE_URL / KAFKA_BOOTSTRAP_SERVERS are
                          set) and the four services; Ctrl-C stops everything
sailo token --role ROLE   a bearer token from the local issuer (embedded default only)
sailo migrate             apply database migrations
sailo schemas             write the event contracts' JSON Schema into schemas/
"""

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


def _ensure_signing_key(data_dir: Path) -> tuple[Path, Path]:
    from shared.runtime import local_issuer_keys

    return local_issuer_keys(data_dir)


def cmd_token(args: argparse.Namespace) -> int:
    from shared.auth import Role, mint_token
    from shared.settings import Settings

    settings = Settings()
    private, _public = _ensure_signing_key(settings.sailo_data_dir)
    role = Role(args.role)
    if role is Role.AGENT and not args.agent:
        print("sailo token: --agent ID is required for --role agent", file=sys.stderr)
        return 2
    token = mint_token(
        private.read_bytes(),
        issuer=settings.auth_issuer,
        audience=settings.auth_audience,
        role=role,
        subject=args.subject or f"local-{role.value}",
        agent_id=args.agent if role is Role.AGENT else None,
        institute_id=args.institute,
        ttl_seconds=args.ttl,
    )
    print(token)
    return 0


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
    from deploy.embedded import EmbeddedError, EmbeddedStack

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

        _private, public = _ensure_signing_key(data_dir)
        env.setdefault("AUTH_PUBLIC_KEY_FILE", str(public))
        if stopping:
            return 0
        subprocess.run([sys.executable, "-m", "shared.db", "upgrade"], env=env, check=True)
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


def cmd_migrate(_: argparse.Namespace) -> int:
    from shared.db import upgrade
    from shared.settings import Settings

    upgrade(Settings())
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from shared.audit import verify_file

    report = verify_file(Path(args.file), public_key=[Path(p) for p in args.public_key] or None)
    if report.ok:
        print(
            f"audit log intact: {report.checked} entries checked, {report.verified_size} covered by checkpoints"
        )
        return 0
    print(
        f"audit log NOT intact: {report.problem} at position {report.first_bad_position}"
        + (f" ({report.detail})" if report.detail else ""),
        file=sys.stderr,
    )
    return 1


def cmd_schemas(_: argparse.Namespace) -> int:
    from shared.events import write_json_schemas

    for path in write_json_schemas():
        print(path)
    return 0


def main(argv: list[str] | None = None) -> int:
    from shared.auth import Role

    parser = argparse.ArgumentParser(
        prog="sailo", description="Sailo: lawful keeping of customer-service contacts"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    dev = commands.add_parser("dev", help="run PostgreSQL, the broker and the four services locally")
    dev.add_argument("--pg-port", type=int, default=int(os.environ.get("SAILO_PG_PORT", "55432")))
    dev.add_argument("--kafka-port", type=int, default=int(os.environ.get("SAILO_KAFKA_PORT", "59092")))
    dev.set_defaults(func=cmd_dev)

    token = commands.add_parser("token", help="print a bearer token from the local issuer")
    token.add_argument("--role", required=True, choices=[r.value for r in Role])
    token.add_argument("--agent", help="agent id (required for --role agent)")
    token.add_argument("--institute", help="institute id (for --role institute)")
    token.add_argument("--subject", help="the token's subject (default: local-ROLE)")
    token.add_argument("--ttl", type=int, default=8 * 3600, help="lifetime in seconds")
    token.set_defaults(func=cmd_token)

    commands.add_parser("migrate", help="apply database migrations").set_defaults(func=cmd_migrate)
    commands.add_parser("schemas", help="export event contract JSON Schemas").set_defaults(func=cmd_schemas)

    audit = commands.add_parser("audit", help="audit log tools").add_subparsers(
        dest="audit_command", required=True
    )
    verify = audit.add_parser("verify", help="verify an exported audit log (JSON lines, e.g. from kcat)")
    verify.add_argument("file", help='JSON lines: audit entries and {"checkpoint": ...} lines')
    verify.add_argument(
        "--public-key",
        action="append",
        default=[],
        help="PEM public key of the checkpoints (repeat for rotated keys)",
    )
    verify.set_defaults(func=cmd_audit_verify)

    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
