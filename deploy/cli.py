"""The `sailo` command: run the whole system locally, mint development tokens, migrate, export contracts.

sailo dev                 PostgreSQL + broker (embedded unless DATABASE_URL / KAFKA_BOOTSTRAP_SERVERS are
                          set) and the four services; Ctrl-C stops everything
sailo token --role ROLE   a bearer token from the local issuer (embedded default only)
sailo migrate             apply database migrations
sailo schemas             write the event contracts' JSON Schema into schemas/
sailo audit verify FILE --public-key PEM
                          verify an audit log dump (JSON lines, e.g. from kcat); exit 1 at the first fault
sailo audit verify --topic [--bootstrap-servers X] --public-key PEM
                          the same, reading the audit topic from its beginning to its current end
sailo audit export --out FILE
                          write the audit topic to FILE in that format
sailo audit public-key    print the checkpoint signing key's public key (PEM)
sailo apikey create --platform NAME [--rate N --burst N]
                          a platform's API key, printed once (DATABASE_URL as for `sailo migrate`)
sailo apikey list         every key: id, platform, limits, who made it when, revoked when
sailo apikey revoke KEYID revoke a key (running services refuse it within API_KEY_CACHE_SECONDS)
sailo loan fetch LOAN_ID --export-url URL --token TOKEN --out DIR [--progress]
                          an institute's download of its delivered loan: the package and, apart, its key;
                          unpacked into DIR and every recording checked against the manifest (exit 1 if not)
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, TextIO, TypeVar
from uuid import UUID

if TYPE_CHECKING:
    import httpx
    from sqlalchemy.ext.asyncio import AsyncSession

    from services.export.package import UnpackReport
    from services.ingest.apikeys import ApiKeyInfo

T = TypeVar("T")

SERVICES = (
    ("ingest", "INGEST_PORT", 8001),
    ("retention", "RETENTION_PORT", 8002),
    ("dsr", "DSR_PORT", 8003),
    ("export", "EXPORT_PORT", 8004),
)


def _ensure_signing_key(data_dir: Path) -> tuple[Path, Path]:
    from shared.security.auth import local_issuer_keys

    return local_issuer_keys(data_dir)


def cmd_token(args: argparse.Namespace) -> int:
    from shared.platform.settings import Settings
    from shared.security.auth import Role, mint_token

    settings = Settings()
    private, _public = _ensure_signing_key(settings.sailo_data_dir)
    role = Role(args.role)
    if role is Role.AGENT and not args.agent:
        print("sailo token: --agent ID is required for --role agent", file=sys.stderr)
        return 2
    if role is Role.INSTITUTE and not args.institute:
        print("sailo token: --institute ID is required for --role institute", file=sys.stderr)
        return 2
    token = mint_token(
        private.read_bytes(),
        issuer=settings.auth_issuer,
        audience=settings.auth_audience,
        role=role,
        subject=args.subject or f"local-{role.value}",
        agent_id=args.agent if role is Role.AGENT else None,
        institute_id=args.institute if role is Role.INSTITUTE else None,
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
    from deploy.embedded.errors import EmbeddedError
    from deploy.embedded.stack import EmbeddedStack

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


def cmd_migrate(_: argparse.Namespace) -> int:
    from shared.platform.db import upgrade
    from shared.platform.settings import Settings

    upgrade(Settings())
    return 0


def cmd_retention_replan(args: argparse.Namespace) -> int:
    """Recompute every pending schedule item under the policy files as they are now; print the diff."""
    import asyncio
    from collections import Counter

    from services.retention.schedule import replan
    from shared.platform.db import create_engine, create_sessionmaker
    from shared.platform.settings import Settings
    from shared.policy.registry import load_policies

    settings = Settings()
    policies = load_policies(settings.policy_dir)

    async def run() -> int:
        engine = create_engine(settings)
        try:
            async with create_sessionmaker(engine)() as session, session.begin():
                changes = await replan(session, policies, apply=args.apply)
                if not args.apply:
                    await session.rollback()
        finally:
            await engine.dispose()
        summary = Counter((c.register, c.artifact_class, c.kind) for c in changes)
        for (register, artifact_class, kind), count in sorted(summary.items()):
            print(f"{register}\t{artifact_class}\t{kind}\t{count}")
        for change in changes[: args.show]:
            print(
                f"  {change.contact_ref} {change.artifact_class} {change.item or '-'}: "
                f"{change.old_version}/{change.old_due} -> {change.new_version}/{change.new_due}"
            )
        verb = "changed" if args.apply else "would change (dry run; --apply to rewrite the schedule)"
        print(f"{len(changes)} schedule item(s) {verb}")
        return 0

    return asyncio.run(run())


def cmd_audit_verify(args: argparse.Namespace) -> int:
    import tempfile

    from shared.audit.chain import verify_file

    if (args.file is None) == (args.topic is None):
        print("sailo audit verify: give a FILE or --topic, not both", file=sys.stderr)
        return 2
    keys = [Path(p) for p in args.public_key] or None
    try:
        if args.topic is None:
            report = verify_file(Path(args.file), public_key=keys)
        else:
            with tempfile.TemporaryDirectory(prefix="sailo-audit-") as directory:
                dump = Path(directory) / "audit.jsonl"
                if (failed := _dump_audit_topic(args, dump)) is not None:
                    return failed
                report = verify_file(dump, public_key=keys)
    except (OSError, ValueError) as exc:  # a file or key that cannot be read: say which kind, not its content
        print(f"sailo audit verify: cannot read the input or the key ({type(exc).__name__})", file=sys.stderr)
        return 2
    if report.ok and report.checked == 0:
        # Nothing was shown intact. Almost always a dump that failed (kcat could not reach the broker and left
        # an empty file), which must not pass for a clean audit.
        print("audit log NOT verified: the input holds no entries", file=sys.stderr)
        return 1
    if report.ok:
        print(
            f"audit log intact: {report.checked} entries checked, {report.verified_size} covered by checkpoints"
            + (f", {report.duplicates} exact re-deliveries skipped" if report.duplicates else "")
        )
        return 0
    print(
        f"audit log NOT intact: {report.problem} at position {report.first_bad_position}"
        + (f" ({report.detail})" if report.detail else ""),
        file=sys.stderr,
    )
    return 1


def _dump_audit_topic(args: argparse.Namespace, path: Path) -> int | None:
    """Write the audit topic to ``path``; an exit code if that failed, else None."""
    import asyncio

    from aiokafka.errors import KafkaError

    from shared.audit.relay import AUDIT_TOPIC, dump_topic
    from shared.platform.settings import Settings

    settings = Settings()
    if args.bootstrap_servers:
        settings = settings.model_copy(update={"kafka_bootstrap_servers": args.bootstrap_servers})
    topic = args.topic or settings.topic(AUDIT_TOPIC)

    async def dump() -> int:
        with path.open("wb") as out:
            return await dump_topic(settings, out, topic=topic)

    try:
        count = asyncio.run(dump())
    except LookupError:
        print(f"sailo audit: topic {topic} does not exist", file=sys.stderr)
        return 2
    except (KafkaError, TimeoutError, OSError) as exc:
        print(f"sailo audit: reading {topic} failed ({type(exc).__name__})", file=sys.stderr)
        return 2
    print(f"read {count} messages from {topic}", file=sys.stderr)
    return None


def cmd_audit_export(args: argparse.Namespace) -> int:
    out = Path(args.out)
    partial = out.with_name(out.name + ".partial")
    if (failed := _dump_audit_topic(args, partial)) is not None:
        partial.unlink(missing_ok=True)
        return failed
    partial.replace(out)  # the file appears whole or not at all
    return 0


def cmd_audit_public_key(_: argparse.Namespace) -> int:
    from shared.audit.chain import key_id
    from shared.audit.log import audit_signing_key, public_key_pem
    from shared.platform.settings import Settings

    try:
        private_key = audit_signing_key(Settings())
    except (OSError, ValueError) as exc:
        print(f"sailo audit public-key: no usable signing key ({exc})", file=sys.stderr)
        return 2
    sys.stdout.write(public_key_pem(private_key).decode())
    print(f"key_id {key_id(private_key.public_key())}", file=sys.stderr)
    return 0


def _in_transaction(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run ``work`` in one transaction on DATABASE_URL (the settings, as `sailo migrate` reads them)."""
    import asyncio

    from shared.platform.db import create_engine, create_sessionmaker, transaction
    from shared.platform.settings import Settings

    async def run() -> T:
        engine = create_engine(Settings())
        try:
            async with transaction(create_sessionmaker(engine)) as session:
                return await work(session)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _apikey_database_error(exc: Exception) -> int:
    from sqlalchemy.exc import ProgrammingError

    # The exception's own text may quote the connection URL, password included: its type only.
    if isinstance(exc, ProgrammingError):
        print("sailo apikey: the API key table is missing; run `sailo migrate` first", file=sys.stderr)
    else:
        print(f"sailo apikey: the database at DATABASE_URL failed ({type(exc).__name__})", file=sys.stderr)
    return 1


def _operator() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in some containers
        return "unknown"


def _limits(info: ApiKeyInfo) -> str:
    rate = f"{info.rate_per_second:g}/s" if info.rate_per_second is not None else "default rate"
    burst = f"burst {info.burst}" if info.burst is not None else "default burst"
    return f"{rate}, {burst}"


def cmd_apikey_create(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from sqlalchemy.exc import DBAPIError

    from services.ingest.apikeys import CreatedApiKey, create_api_key

    async def work(session: AsyncSession) -> CreatedApiKey:
        return await create_api_key(
            session,
            platform=args.platform,
            created_by=args.created_by or _operator(),
            now=datetime.now(UTC),
            rate_per_second=args.rate,
            burst=args.burst,
        )

    try:
        created = _in_transaction(work)
    except ValueError as exc:
        print(f"sailo apikey: {exc}", file=sys.stderr)
        return 2
    except (DBAPIError, OSError) as exc:
        return _apikey_database_error(exc)
    info = created.info
    # The key alone on stdout, for scripts; what it is on stderr.
    print(
        f"API key {info.key_id} for platform {info.platform} ({_limits(info)}). "
        "This is the only time it is shown: store it as a secret now.",
        file=sys.stderr,
    )
    print(created.key)
    return 0


def cmd_apikey_list(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import DBAPIError

    from services.ingest.apikeys import list_api_keys

    async def work(session: AsyncSession) -> list[ApiKeyInfo]:
        return await list_api_keys(session, platform=args.platform)

    try:
        keys = _in_transaction(work)
    except (DBAPIError, OSError) as exc:
        return _apikey_database_error(exc)
    print(
        f"{'KEY ID':<16}  {'PLATFORM':<24}  {'LIMITS':<30}  {'CREATED (UTC)':<16}  {'BY':<20}  REVOKED (UTC)"
    )
    for info in keys:
        revoked = f"{info.revoked_at:%Y-%m-%d %H:%M}" if info.revoked_at is not None else "-"
        print(
            f"{info.key_id:<16}  {info.platform:<24}  {_limits(info):<30}  {info.created_at:%Y-%m-%d %H:%M}  "
            f"{info.created_by:<20}  {revoked}"
        )
    return 0


def cmd_apikey_revoke(args: argparse.Namespace) -> int:
    import re
    from datetime import UTC, datetime

    from sqlalchemy.exc import DBAPIError

    from services.ingest.apikeys import revoke_api_key
    from shared.platform.settings import Settings

    if not re.fullmatch(r"[0-9a-f]{16}", args.key_id):
        print("sailo apikey: KEYID is the 16-character id `sailo apikey list` shows", file=sys.stderr)
        return 2
    now = datetime.now(UTC)

    async def work(session: AsyncSession) -> ApiKeyInfo | None:
        return await revoke_api_key(session, args.key_id, now=now)

    try:
        info = _in_transaction(work)
    except (DBAPIError, OSError) as exc:
        return _apikey_database_error(exc)
    if info is None:
        print(f"sailo apikey: no API key {args.key_id}", file=sys.stderr)
        return 1
    if info.revoked_at is not None and info.revoked_at != now:
        print(
            f"API key {info.key_id} ({info.platform}) was already revoked at {info.revoked_at:%Y-%m-%d %H:%M} UTC"
        )
        return 0
    print(
        f"API key {info.key_id} ({info.platform}) revoked; running services refuse it within "
        f"API_KEY_CACHE_SECONDS ({Settings().api_key_cache_seconds:g} s here)"
    )
    return 0


class LoanFetchError(Exception):
    """`sailo loan fetch` could not get the package or its key; the message names the step and the HTTP status,
    with the service's field and reason if it gave them."""


class ProgressBar:
    """A one-line text progress bar (bytes done of the total, and percent), redrawn in place with a carriage
    return at most every `interval` seconds and at each whole percent."""

    def __init__(self, stream: TextIO, total: int | None, *, width: int = 30, interval: float = 0.1) -> None:
        self.stream = stream
        self.total = total
        self.width = width
        self.interval = interval
        self.done = 0
        self._drawn_at = 0.0
        self._drawn_percent = -1

    def advance(self, count: int) -> None:
        self.done += count
        now = time.monotonic()
        if now - self._drawn_at >= self.interval or self._percent() != self._drawn_percent:
            self.draw()
            self._drawn_at = now

    def _percent(self) -> int:
        return min(100, self.done * 100 // self.total) if self.total else 0

    def line(self) -> str:
        done_mb = self.done / 1_000_000
        if not self.total:
            return f"{done_mb:,.1f} MB"
        filled = min(self.width, self.done * self.width // self.total)
        bar = "#" * filled + "-" * (self.width - filled)
        return f"[{bar}] {done_mb:,.1f} / {self.total / 1_000_000:,.1f} MB {self._percent():3d}%"

    def draw(self) -> None:
        self._drawn_percent = self._percent()
        self.stream.write("\r" + self.line())
        self.stream.flush()

    def finish(self) -> None:
        self.draw()
        self.stream.write("\n")
        self.stream.flush()


def _refusal(step: str, response: httpx.Response) -> LoanFetchError:
    detail = ""
    try:
        body = response.json()
        errors = (body.get("errors") or []) if isinstance(body, dict) else []
        detail = "; ".join(f"{e.get('field')}: {e.get('reason')}" for e in errors if isinstance(e, dict))
        if not detail and isinstance(body, dict) and isinstance(body.get("title"), str):
            detail = body["title"]
    except ValueError:
        pass
    return LoanFetchError(f"{step} refused: HTTP {response.status_code}" + (f" ({detail})" if detail else ""))


async def fetch_loan(
    client: httpx.AsyncClient, loan_id: UUID, out_dir: Path, *, progress: TextIO | None = None
) -> UnpackReport:
    """Fetch a delivered loan's package key, then download the package, decrypting and unpacking it into
    `out_dir` as it arrives and checking every recording against the manifest (services.export.package).

    `client` carries the export service's base URL and the institute's token. The download's SHA-256 is checked
    against the one the service gives with the package and with the key; a difference is reported as a
    mismatch. Raises LoanFetchError when the service refuses a step, and DecryptionError when the package does
    not open with its key.
    """
    import base64
    import hashlib

    from services.export.package import unpack_package

    key_response = await client.get(f"/v1/loans/{loan_id}/package-key")
    if key_response.status_code != 200:
        raise _refusal("the package key request was", key_response)
    key_body = key_response.json()
    package_key = base64.b64decode(key_body["key"], validate=True)
    digest = hashlib.sha256()
    async with client.stream("GET", f"/v1/loans/{loan_id}/package") as response:
        if response.status_code != 200:
            await response.aread()
            raise _refusal("the package download was", response)
        length = response.headers.get("content-length")
        bar = (
            ProgressBar(progress, int(length) if length and length.isdigit() else None) if progress else None
        )

        async def received() -> AsyncIterator[bytes]:
            async for piece in response.aiter_bytes(1024 * 1024):
                digest.update(piece)
                if bar is not None:
                    bar.advance(len(piece))
                yield piece

        try:
            report = await unpack_package(
                received(), package_key=package_key, loan_id=loan_id, out_dir=out_dir
            )
        finally:
            if bar is not None:
                bar.finish()
        announced = response.headers.get("x-package-sha256")
    for source, expected in (
        ("the download's header", announced),
        ("the key's record", key_body.get("package_sha256")),
    ):
        if expected is not None and expected != digest.hexdigest():
            report.mismatches.append(f"the package's SHA-256 differs from {source}")
    return report


def cmd_loan_fetch(args: argparse.Namespace) -> int:
    """Download a delivered loan's package and its key, unpack it into --out and verify it."""
    import asyncio
    import uuid

    import httpx

    from shared.security.crypto import DecryptionError

    try:
        loan_id = uuid.UUID(args.loan_id)
    except ValueError:
        print("sailo loan fetch: LOAN_ID is the loan's id (a UUID)", file=sys.stderr)
        return 2
    token = args.token or os.environ.get("SAILO_TOKEN")
    if not token:
        print("sailo loan fetch: give --token or set SAILO_TOKEN", file=sys.stderr)
        return 2
    progress = sys.stderr if args.progress or sys.stderr.isatty() else None

    async def run() -> UnpackReport:
        async with httpx.AsyncClient(
            base_url=args.export_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(30.0, read=300.0),
        ) as client:
            return await fetch_loan(client, loan_id, Path(args.out), progress=progress)

    try:
        report = asyncio.run(run())
    except LoanFetchError as exc:
        print(f"sailo loan fetch: {exc}", file=sys.stderr)
        return 2
    except httpx.HTTPError as exc:
        print(
            f"sailo loan fetch: the export service could not be reached ({type(exc).__name__})",
            file=sys.stderr,
        )
        return 2
    except DecryptionError:
        print(
            "sailo loan fetch: the package does not open with its key (a wrong key, or it was altered or cut "
            "short on the way); nothing was unpacked",
            file=sys.stderr,
        )
        return 1
    except OSError as exc:
        print(f"sailo loan fetch: cannot write into {args.out} ({type(exc).__name__})", file=sys.stderr)
        return 2
    print(
        f"loan {loan_id}: {report.verified} of {report.items} recordings verified "
        f"({report.audio_bytes / 1_000_000:,.1f} MB of audio), package {report.ciphertext_bytes:,} bytes, "
        f"SHA-256 {report.ciphertext_sha256}; unpacked into {args.out}"
    )
    for problem in report.mismatches:
        print(f"MISMATCH {problem}", file=sys.stderr)
    if not report.ok:
        print(
            f"sailo loan fetch: the package does NOT match its manifest ({len(report.mismatches)} problem(s))",
            file=sys.stderr,
        )
        return 1
    return 0


def _audit_topic_arguments(parser: argparse.ArgumentParser, topic_help: str) -> None:
    parser.add_argument("--topic", nargs="?", const="", metavar="NAME", help=topic_help)
    parser.add_argument("--bootstrap-servers", help="broker list (default: KAFKA_BOOTSTRAP_SERVERS)")


def cmd_schemas(_: argparse.Namespace) -> int:
    from shared.contracts.events import write_json_schemas

    for path in write_json_schemas():
        print(path)
    return 0


def main(argv: list[str] | None = None) -> int:
    from shared.security.auth import Role

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
    verify = audit.add_parser(
        "verify", help="verify an audit log: a dump (JSON lines, e.g. from kcat) or the topic itself"
    )
    verify.add_argument("file", nargs="?", help='JSON lines: audit entries and {"checkpoint": ...} lines')
    verify.add_argument(
        "--public-key",
        action="append",
        default=[],
        help="PEM public key of the checkpoints (repeat for rotated keys)",
    )
    _audit_topic_arguments(verify, "read the topic (default: KAFKA_TOPIC_PREFIX + audit) instead of a FILE")
    verify.set_defaults(func=cmd_audit_verify)
    export = audit.add_parser("export", help="write the audit topic to a JSON-lines file, as kcat -e would")
    export.add_argument("--out", required=True, help="the file to write")
    _audit_topic_arguments(export, "the topic (default: KAFKA_TOPIC_PREFIX + audit)")
    export.set_defaults(func=cmd_audit_export, topic="")
    audit.add_parser(
        "public-key", help="print the public key of the checkpoint signing key (PEM; key_id on stderr)"
    ).set_defaults(func=cmd_audit_public_key)

    apikey = commands.add_parser("apikey", help="platforms' API keys").add_subparsers(
        dest="apikey_command", required=True
    )
    create = apikey.add_parser("create", help="create a platform's API key and print it, once")
    create.add_argument("--platform", required=True, help="the platform's code, e.g. genesys-prh")
    create.add_argument(
        "--rate", type=float, help="events per second (default: INGEST_RATE_LIMIT_PER_SECOND)"
    )
    create.add_argument("--burst", type=int, help="events at once (default: INGEST_RATE_LIMIT_BURST)")
    create.add_argument("--created-by", help="who asked for it, for the record (default: the login name)")
    create.set_defaults(func=cmd_apikey_create)
    listing = apikey.add_parser("list", help="list API keys (never their secrets)")
    listing.add_argument("--platform", help="only this platform's keys")
    listing.set_defaults(func=cmd_apikey_list)
    revoke = apikey.add_parser("revoke", help="revoke an API key")
    revoke.add_argument("key_id", metavar="KEYID", help="the key's id, as `sailo apikey list` shows it")
    revoke.set_defaults(func=cmd_apikey_revoke)

    retention = commands.add_parser("retention", help="retention tools").add_subparsers(
        dest="retention_command", required=True
    )
    replan = retention.add_parser(
        "replan", help="recompute schedules under the current policy files; a dry run unless --apply"
    )
    replan.add_argument(
        "--apply", action="store_true", help="rewrite the schedule (after reviewing the dry run)"
    )
    replan.add_argument("--show", type=int, default=20, help="how many changed items to list (default 20)")
    replan.set_defaults(func=cmd_retention_replan)

    loan = commands.add_parser("loan", help="an institute's tools for its research loans").add_subparsers(
        dest="loan_command", required=True
    )
    fetch = loan.add_parser(
        "fetch", help="download a delivered loan's package and key, unpack it and verify every recording"
    )
    fetch.add_argument("loan_id", metavar="LOAN_ID", help="the loan's id")
    fetch.add_argument("--export-url", required=True, help="the export service, e.g. https://export.example")
    fetch.add_argument("--token", help="the institute's bearer token (default: SAILO_TOKEN)")
    fetch.add_argument("--out", required=True, help="the directory to unpack into")
    fetch.add_argument(
        "--progress", action="store_true", help="draw the progress bar even when stderr is not a terminal"
    )
    fetch.set_defaults(func=cmd_loan_fetch)

    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
