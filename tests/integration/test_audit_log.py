"""The audit log on real PostgreSQL and a real broker: outbox, chain, checkpoints, the topic and its auditor.

Each test has a database and a topic prefix of its own, so its chain starts at sequence 0 and its topic holds
only its own messages. Nothing waits on the wall clock: tests poll with a bounded number of attempts, and
time-based checkpoints run on a frozen clock that the test moves.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.dsr.app import create_app as create_dsr
from services.export.app import create_app as create_export
from services.ingest.app import create_app as create_ingest
from services.retention.app import create_app as create_retention
from shared.app import Runtime
from shared.audit.chain import (
    Action,
    Checkpoint,
    Outcome,
    Problem,
    canonical_bytes,
    load_public_key,
    merkle_root,
    verify_checkpoint,
    verify_stream,
)
from shared.audit.log import (
    SYSTEM_ROLE,
    AuditCheckpoint,
    AuditEntry,
    AuditOutbox,
    AuditRelayState,
    actor_ref,
    record,
    record_now,
    system_actor,
)
from shared.audit.relay import AUDIT_TOPIC, dump_topic
from shared.platform.clock import FrozenClock
from shared.platform.crypto import BlindIndex
from shared.platform.db import create_engine, create_sessionmaker, transaction, upgrade_async
from shared.platform.settings import Settings
from tests.conftest import Infrastructure, drop_database, plain_dsn

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BLIND_INDEX = BlindIndex(bytes(range(32)))
T0 = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)
CHECKPOINT_EVERY = 5


@dataclass
class AuditEnv:
    settings: Settings
    sessionmaker: async_sessionmaker[AsyncSession]
    dsn: str  # plain asyncpg DSN of the test's database

    @property
    def public_key(self) -> Path:
        return self.settings.sailo_data_dir / "keys" / "audit-public.pem"

    @property
    def topic(self) -> str:
        return self.settings.topic(AUDIT_TOPIC)

    def environment(self, **extra: str) -> dict[str, str]:
        """The variables a `sailo` or service subprocess needs to see this test's database and topic."""
        settings = self.settings
        return {
            **os.environ,
            "SAILO_ENV": "test",
            "DATABASE_URL": settings.database_url,
            "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
            "KAFKA_ENABLE_IDEMPOTENCE": str(settings.kafka_enable_idempotence).lower(),
            "KAFKA_TOPIC_PREFIX": settings.kafka_topic_prefix,
            "SAILO_DATA_DIR": str(settings.sailo_data_dir),
            "AUDIT_CHECKPOINT_EVERY": str(settings.audit_checkpoint_every),
            "AUDIT_CHECKPOINT_SECONDS": str(settings.audit_checkpoint_seconds),
            "LOG_FORMAT": "json",
            **extra,
        }


@pytest.fixture
async def audit_env(
    infrastructure: Infrastructure, settings: Settings, tmp_path: Path
) -> AsyncIterator[AuditEnv]:
    name = f"sailo_audit_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(plain_dsn(infrastructure.database_url))
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    base, _, _ = infrastructure.database_url.rpartition("/")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    env_settings = settings.model_copy(
        update={
            "database_url": f"{base}/{name}",
            "kafka_topic_prefix": f"sailo-audit-{uuid.uuid4().hex[:8]}.",
            "sailo_data_dir": data_dir,
            "service_name": "audit-test",
            "audit_checkpoint_every": CHECKPOINT_EVERY,
            # Time-based checkpoints only where a test moves a frozen clock.
            "audit_checkpoint_seconds": 86_400.0,
            "audit_relay_interval_seconds": 0.05,
        }
    )
    await upgrade_async(env_settings)
    engine = create_engine(env_settings)
    try:
        yield AuditEnv(env_settings, create_sessionmaker(engine), plain_dsn(env_settings.database_url))
    finally:
        await engine.dispose()
        await drop_database(infrastructure.database_url, name)


async def poll(check: Callable[[], Awaitable[Any]], *, attempts: int = 1200, pause: float = 0.05) -> Any:
    """Poll until `check` returns a truthy value; bounded by count (1200 x 50 ms: a generous minute)."""
    last: Any = None
    for _ in range(attempts):
        last = await check()
        if last:
            return last
        await asyncio.sleep(pause)
    raise AssertionError(f"condition not met after {attempts} attempts; last value: {last!r}")


async def relay_state(env: AuditEnv) -> AuditRelayState:
    async with env.sessionmaker() as session:
        return (await session.execute(select(AuditRelayState))).scalar_one()


async def all_published(env: AuditEnv, entries: int) -> bool:
    """True once `entries` entries are chained and every entry and checkpoint is on the topic."""
    async with env.sessionmaker() as session:
        waiting = (await session.execute(select(func.count()).select_from(AuditOutbox))).scalar_one()
    state = await relay_state(env)
    return (
        waiting == 0
        and state.tree_size == entries
        and state.published_size == entries
        and state.published_checkpoint_size == state.checkpoint_size
    )


async def topic_lines(env: AuditEnv) -> list[bytes]:
    out = io.BytesIO()
    await dump_topic(env.settings, out)
    return out.getvalue().splitlines()


def split(lines: Sequence[bytes]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    entries, checkpoints = [], []
    for line in lines:
        value = orjson.loads(line)
        if set(value) == {"checkpoint"}:
            checkpoints.append(value["checkpoint"])
        else:
            entries.append(value)
    return entries, checkpoints


def verify_lines(env: AuditEnv, lines: Sequence[bytes]) -> Any:
    entries, checkpoints = split(lines)
    return verify_stream(entries, checkpoints, load_public_key(env.public_key.read_bytes()))


async def record_reads(session: AsyncSession, object_ids: Sequence[uuid.UUID], *, agent: str = "a1") -> None:
    await record(
        session,
        actor=actor_ref(BLIND_INDEX, agent),
        role="agent",
        action=Action.READ,
        object_type="contact",
        object_ids=object_ids,
        service="ingest",
        occurred_at=T0,
    )


async def record_many(env: AuditEnv, count: int) -> list[uuid.UUID]:
    """`count` entries, one object each, committed in one transaction."""
    ids = [uuid.uuid4() for _ in range(count)]
    async with transaction(env.sessionmaker) as session:
        for object_id in ids:
            await record_reads(session, [object_id])
    return ids


# --- Transactions -------------------------------------------------------------------------------------------


async def test_an_entry_exists_exactly_when_its_transaction_commits(audit_env: AuditEnv) -> None:
    rt = await Runtime.start(audit_env.settings, migrate=False)
    try:
        rolled_back, committed = uuid.uuid4(), uuid.uuid4()
        async with rt.sessionmaker() as session:
            await session.begin()
            await record_reads(session, [rolled_back])
            await session.flush()  # the row reached the database, inside the transaction
            await session.rollback()
        async with transaction(rt.sessionmaker) as session:
            await record_reads(session, [committed])
        await poll(lambda: all_published(audit_env, 1))
    finally:
        await rt.stop()

    async with audit_env.sessionmaker() as session:
        stored = (await session.execute(select(AuditEntry.sequence, AuditEntry.entry))).all()
    assert [sequence for sequence, _ in stored] == [0]
    assert orjson.loads(stored[0][1])["object_ids"] == [str(committed)]
    lines = await topic_lines(audit_env)
    entries, checkpoints = split(lines)
    assert [entry["object_ids"] for entry in entries] == [[str(committed)]]
    assert lines[0] == stored[0][1].encode()  # the topic carries exactly the stored line
    assert str(rolled_back).encode() not in b"".join(lines)
    assert [checkpoint["tree_size"] for checkpoint in checkpoints] == [1]
    assert verify_lines(audit_env, lines).ok


async def test_personal_data_never_reaches_the_outbox(audit_env: AuditEnv) -> None:
    attempts: list[dict[str, Any]] = [
        {"actor": "Matti Meikäläinen"},
        {"object_ids": ["+358401234567"]},
        {"object_ids": [uuid.uuid4(), "131052-308T"]},
        {"reason": "asked about his divorce"},
        {"role": "Liisa Virtanen"},
        {"occurred_at": datetime(2026, 3, 2, 9, 0)},
    ]
    async with transaction(audit_env.sessionmaker) as session:
        for attempt in attempts:
            arguments: dict[str, Any] = {
                "actor": actor_ref(BLIND_INDEX, "a1"),
                "role": "agent",
                "action": Action.READ,
                "object_type": "contact",
                "object_ids": [uuid.uuid4()],
                "service": "ingest",
                "occurred_at": T0,
                **attempt,
            }
            with pytest.raises(ValueError, match="audit entry refused") as caught:
                await record(session, **arguments)
            for value in attempt.values():
                if isinstance(value, str):
                    assert value not in str(caught.value)
        with pytest.raises(ValueError):
            await record_now(audit_env.sessionmaker, **{**arguments, "reason": "Matti called"})
    async with audit_env.sessionmaker() as session:
        assert (await session.execute(select(func.count()).select_from(AuditOutbox))).scalar_one() == 0


# --- Append-only --------------------------------------------------------------------------------------------


async def test_the_database_refuses_to_change_entries_and_checkpoints(audit_env: AuditEnv) -> None:
    rt = await Runtime.start(audit_env.settings, migrate=False)
    try:
        await record_many(audit_env, CHECKPOINT_EVERY)
        await poll(lambda: all_published(audit_env, CHECKPOINT_EVERY))
    finally:
        await rt.stop()

    connection = await asyncpg.connect(audit_env.dsn)
    try:
        # The tables' owner holds every privilege on them, and a superuser bypasses privileges altogether;
        # neither gets past the triggers. The embedded role owns the tables; a testcontainers or external
        # one is usually a superuser as well, which adds the usual way of skipping triggers to the attempts.
        owners = await connection.fetch(
            "SELECT tableowner = current_user FROM pg_tables WHERE schemaname = 'audit'"
            " AND tablename IN ('entries', 'checkpoints')"
        )
        assert [row[0] for row in owners] == [True, True]
        superuser = await connection.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        before = await connection.fetch("SELECT sequence, entry FROM audit.entries ORDER BY sequence")
        attempts = [
            "UPDATE audit.entries SET entry_hash = entry_hash",
            "UPDATE audit.entries SET entry = entry WHERE sequence = 2",
            "UPDATE audit.entries SET entry = entry WHERE false",  # refused even when no row matches
            "DELETE FROM audit.entries WHERE sequence = 4",
            "DELETE FROM audit.entries",
            "TRUNCATE audit.entries",
            "TRUNCATE audit.entries, audit.checkpoints CASCADE",
            "UPDATE audit.checkpoints SET root_hash = root_hash",
            "DELETE FROM audit.checkpoints",
            "TRUNCATE audit.checkpoints",
        ]
        for replica in (False, True) if superuser else (False,):
            if replica:
                # This switches ordinary triggers off, not these (ENABLE ALWAYS); only a superuser may set it.
                await connection.execute("SET session_replication_role = replica")
            for statement in attempts:
                with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                    await connection.execute(statement)
        assert await connection.fetch("SELECT sequence, entry FROM audit.entries ORDER BY sequence") == before
    finally:
        await connection.close()
    # INSERT stays allowed, the log grows; but not under a sequence that exists: the chain cannot fork.
    async with audit_env.sessionmaker() as session:
        with pytest.raises(IntegrityError):
            async with session.begin():
                session.add(AuditEntry(sequence=3, event_id=uuid.uuid4(), entry_hash="0" * 64, entry="{}"))


# --- Concurrency --------------------------------------------------------------------------------------------


async def test_two_relays_make_one_chain_with_every_outbox_row_once(audit_env: AuditEnv) -> None:
    # Two runtimes, as two service processes: their own engine, producer and relay on one database.
    first = await Runtime.start(audit_env.settings, migrate=False)
    second = await Runtime.start(
        audit_env.settings.model_copy(update={"service_name": "second"}), migrate=False
    )
    written: list[uuid.UUID] = []

    async def writer(rt: Runtime, number: int) -> None:
        for _ in range(30):
            ids = [uuid.uuid4() for _ in range(number % 3 + 1)]
            async with transaction(rt.sessionmaker) as session:
                for object_id in ids:
                    await record_reads(session, [object_id], agent=f"agent-{number}")
            written.extend(ids)

    try:
        await asyncio.gather(*(writer(first if n % 2 else second, n) for n in range(8)))
        # A batch beyond MAX_OBJECT_IDS becomes several entries, chained like any other.
        batch = [uuid.uuid4() for _ in range(2300)]
        async with transaction(first.sessionmaker) as session:
            await record_reads(session, batch, agent="exporter")
        total = len(written) + 3
        await poll(lambda: all_published(audit_env, total))
    finally:
        await asyncio.gather(first.stop(), second.stop())

    async with audit_env.sessionmaker() as session:
        rows = (
            await session.execute(select(AuditEntry.sequence, AuditEntry.entry).order_by("sequence"))
        ).all()
    assert [sequence for sequence, _ in rows] == list(range(total))
    stored = [orjson.loads(entry) for _, entry in rows]
    assert len({entry["event_id"] for entry in stored}) == total
    ids = [object_id for entry in stored for object_id in entry["object_ids"]]
    assert sorted(ids) == sorted(str(i) for i in [*written, *batch])  # each once, none lost

    lines = await topic_lines(audit_env)
    report = verify_lines(audit_env, lines)
    assert report.ok, report
    assert report.checked - report.duplicates == total
    assert report.verified_size >= total - CHECKPOINT_EVERY


# --- Checkpoints --------------------------------------------------------------------------------------------


async def test_checkpoints_are_signed_stored_and_published_after_the_entries_they_cover(
    audit_env: AuditEnv,
) -> None:
    rt = await Runtime.start(audit_env.settings, migrate=False)
    try:
        await record_many(audit_env, 23)
        await poll(lambda: all_published(audit_env, 23))
    finally:
        await rt.stop()

    public_key = load_public_key(audit_env.public_key.read_bytes())
    async with audit_env.sessionmaker() as session:
        hashes = (await session.execute(select(AuditEntry.entry_hash).order_by("sequence"))).scalars().all()
        stored = (await session.execute(select(AuditCheckpoint).order_by("tree_size"))).scalars().all()
    assert [checkpoint.tree_size for checkpoint in stored] == [5, 10, 15, 20]
    for row in stored:
        checkpoint = Checkpoint.model_validate_json(row.checkpoint)
        assert verify_checkpoint(public_key, checkpoint)
        leaves = [bytes.fromhex(h) for h in hashes[: row.tree_size]]
        assert checkpoint.root_hash == row.root_hash == merkle_root(leaves).hex()

    lines = await topic_lines(audit_env)
    seen = 0
    for line in lines:
        value = orjson.loads(line)
        if "checkpoint" in value:
            assert value["checkpoint"]["tree_size"] == seen  # right after the last entry it covers
        else:
            seen += 1
    report = verify_lines(audit_env, lines)
    assert report.ok and report.checked == 23 and report.verified_size == 20


async def test_a_checkpoint_follows_new_entries_after_the_interval(audit_env: AuditEnv) -> None:
    clock = FrozenClock(T0)
    settings = audit_env.settings.model_copy(update={"audit_checkpoint_seconds": 60.0})
    rt = await Runtime.start(settings, clock=clock, migrate=False)
    try:
        await record_many(audit_env, 3)
        await poll(lambda: all_published(audit_env, 3))
        assert (await relay_state(audit_env)).checkpoint_size == 3  # the first entries are pinned at once
        await record_many(audit_env, 4)  # 7: not yet CHECKPOINT_EVERY past the last checkpoint
        await poll(lambda: all_published(audit_env, 7))
        assert (await relay_state(audit_env)).checkpoint_size == 3
        clock.advance(timedelta(seconds=60))
        await poll(lambda: _published_with_checkpoint(audit_env, 7))
        clock.advance(timedelta(hours=1))  # nothing new since: no new checkpoint
        await record_many(audit_env, 1)
        await poll(lambda: all_published(audit_env, 8))
    finally:
        await rt.stop()
    _entries, checkpoints = split(await topic_lines(audit_env))
    assert [c["tree_size"] for c in checkpoints] == [3, 7, 8]
    assert [c["issued_at"] for c in checkpoints] == [
        "2026-03-02T07:00:00Z",
        "2026-03-02T07:01:00Z",
        "2026-03-02T08:01:00Z",
    ]


async def _published_with_checkpoint(env: AuditEnv, size: int) -> bool:
    return await all_published(env, size) and (await relay_state(env)).checkpoint_size == size


# --- Failures -----------------------------------------------------------------------------------------------


async def test_a_row_the_relay_cannot_chain_holds_the_log_without_skipping_it(audit_env: AuditEnv) -> None:
    # As a newer release might write an action this one does not know, past record()'s checks.
    await record_many(audit_env, 2)
    bad = {
        "event_id": str(uuid.uuid4()),
        "occurred_at": "2026-03-02T07:00:00Z",
        "actor": str(actor_ref(BLIND_INDEX, "a1")),
        "role": "agent",
        "action": "teleport",
        "object_type": "contact",
        "object_ids": [],
        "outcome": "success",
        "reason": None,
        "service": "ingest",
    }
    async with transaction(audit_env.sessionmaker) as session:
        await session.execute(insert(AuditOutbox), [{"entry": bad}])
    after = await record_many(audit_env, 2)
    rt = await Runtime.start(audit_env.settings, migrate=False)
    try:
        await poll(lambda: _chained_published(audit_env, 2))
        assert rt.audit_relay is not None
        for _ in range(3):  # rounds that find the same row again change nothing
            await rt.audit_relay.tick()
        assert (await relay_state(audit_env)).tree_size == 2
        async with transaction(audit_env.sessionmaker) as session:  # an operator takes it out
            await session.execute(delete(AuditOutbox).where(AuditOutbox.entry["action"].astext == "teleport"))
        await poll(lambda: all_published(audit_env, 4))
    finally:
        await rt.stop()
    entries, _checkpoints = split(await topic_lines(audit_env))
    assert [entry["object_ids"] for entry in entries[2:]] == [[str(i)] for i in after]  # in order, none lost


async def _chained_published(env: AuditEnv, size: int) -> bool:
    state = await relay_state(env)
    return state.tree_size == state.published_size == size


async def test_a_lost_merkle_frontier_is_rebuilt_from_the_entries(audit_env: AuditEnv) -> None:
    rt = await Runtime.start(audit_env.settings, migrate=False)
    try:
        await record_many(audit_env, 7)
        await poll(lambda: all_published(audit_env, 7))
        async with transaction(audit_env.sessionmaker) as session:  # as after a restore without this row
            await session.execute(update(AuditRelayState).values(tree_size=0, frontier=[]))
        await record_many(audit_env, 3)  # 10: a checkpoint, whose root needs the whole tree
        await poll(lambda: all_published(audit_env, 10))
    finally:
        await rt.stop()
    report = verify_lines(audit_env, await topic_lines(audit_env))
    assert report.ok and report.verified_size == 10


def run_relay_process(env: AuditEnv, **extra: str) -> subprocess.Popen[bytes]:
    """A service process's runtime (and so its relay) in a process of its own, until killed."""
    script = (
        "import asyncio\n"
        "from shared.app import Runtime\n"
        "from shared.platform.settings import Settings\n"
        "async def main():\n"
        "    await Runtime.start(Settings(_env_file=None), migrate=False)\n"
        "    await asyncio.Event().wait()\n"
        "asyncio.run(main())\n"
    )
    return subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env.environment(**extra),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


async def test_a_crash_between_publishing_and_the_watermark_only_repeats_entries(audit_env: AuditEnv) -> None:
    await record_many(audit_env, 7)  # committed with no relay running
    process = run_relay_process(audit_env, SAILO_FAULTS="audit-relay.after_publish:1")
    _out, err = await asyncio.to_thread(process.communicate, timeout=120)
    assert process.returncode == 137, err.decode()[-2000:]
    assert b"fault injected at audit-relay.after_publish" in err
    state = await relay_state(audit_env)
    assert (state.tree_size, state.published_size) == (7, 0)  # published, but the watermark did not move

    rt = await Runtime.start(audit_env.settings, migrate=False)
    try:
        await poll(lambda: all_published(audit_env, 7))
    finally:
        await rt.stop()
    lines = await topic_lines(audit_env)
    entries, _checkpoints = split(lines)
    assert [entry["sequence"] for entry in entries] == [*range(7), *range(7)]
    report = verify_lines(audit_env, lines)
    assert report.ok and report.checked == 14 and report.duplicates == 7


async def test_a_broker_outage_delays_publication_and_blocks_nothing_else(
    audit_env: AuditEnv, tmp_path: Path
) -> None:
    from deploy.embedded.broker import EmbeddedBroker
    from deploy.embedded.ports import free_port

    # A broker of this test's own, to stop and start again; the session's broker stays up.
    broker = EmbeddedBroker(tmp_path / "broker", free_port())
    broker.start()
    settings = audit_env.settings.model_copy(
        update={
            "kafka_bootstrap_servers": broker.bootstrap_servers,
            "kafka_enable_idempotence": False,
            "kafka_request_timeout_ms": 2000,
        }
    )
    env = AuditEnv(settings, audit_env.sessionmaker, audit_env.dsn)
    rt = await Runtime.start(settings, migrate=False)
    try:
        broker.stop()
        # The services' own transactions go on, and the relay keeps chaining; only publication waits.
        await record_many(env, 12)
        await poll(lambda: _chained_unpublished(env, 12))
        # The broker comes back (empty: its storage is memory) and the relay catches up.
        broker.start()
        await poll(lambda: all_published(env, 12))
        lines = await topic_lines(env)
    finally:
        await rt.stop()
        broker.stop()
    report = verify_lines(env, lines)
    assert report.ok and report.checked == 12 and report.verified_size >= 10


async def _chained_unpublished(env: AuditEnv, size: int) -> bool:
    state = await relay_state(env)
    return state.tree_size == size and state.published_size == 0


# --- Every service runs the relay -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "factory",
    [create_ingest, create_retention, create_dsr, create_export],
    ids=["ingest", "retention", "dsr", "export"],
)
async def test_every_service_publishes_the_audit_log(audit_env: AuditEnv, factory: Any) -> None:
    app = factory(audit_env.settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as client:
            assert (await client.get("/readyz")).status_code == 200
        # Starting may itself be audited (the first start with a policy records it): count from here, in one
        # statement so the relay moving rows from the outbox to the chain cannot be counted twice.
        async with audit_env.sessionmaker() as session:
            before = (
                await session.execute(
                    text(
                        "SELECT (SELECT count(*) FROM audit.outbox)"
                        " + COALESCE((SELECT tree_size FROM audit.relay_state), 0)"
                    )
                )
            ).scalar_one()
        await record_now(
            audit_env.sessionmaker,
            actor=system_actor("retention"),
            role=SYSTEM_ROLE,
            action=Action.DELETE,
            object_type="recording",
            object_ids=[uuid.uuid4()],
            outcome=Outcome.SUCCESS,
            reason="retention_expired",
            service="retention",
            occurred_at=T0,
        )
        await poll(lambda: all_published(audit_env, before + 1))


# --- The auditor's view: a standard Kafka client and the `sailo` command -------------------------------------


def sailo(env: AuditEnv, *args: str) -> subprocess.CompletedProcess[str]:
    executable = Path(sys.executable).parent / "sailo"
    command = [str(executable)] if executable.exists() else [sys.executable, "-m", "deploy.cli"]
    return subprocess.run(
        [*command, *args], cwd=ROOT, env=env.environment(), capture_output=True, text=True, timeout=120
    )


def consume_with_librdkafka(bootstrap_servers: str, topic: str) -> list[bytes]:
    """The topic from its beginning to its end with confluent-kafka (librdkafka), as an auditor would."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": f"auditor-{uuid.uuid4().hex}",  # required by the client, never joined: see assign
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    values: list[bytes] = []
    try:
        # The one partition from offset 0, as `kcat -C -o beginning` reads it: no consumer group, no commits.
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        for _ in range(600):  # bounded by count, like every wait in these tests
            message = consumer.poll(1.0)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    return values  # one partition: its end is the topic's end
                raise AssertionError(str(error))
            value = message.value()
            assert isinstance(value, bytes)
            values.append(value)
        raise AssertionError("no end of partition from the broker")
    finally:
        consumer.close()


def forged_copy(entry_line: bytes) -> bytes:
    """The entry with another event id and a correct hash of its own: an insertion that passes the hash."""
    entry = orjson.loads(entry_line)
    entry["event_id"] = str(uuid.uuid4())
    entry["entry_hash"] = hashlib.sha256(canonical_bytes(entry)).hexdigest()
    return orjson.dumps(entry)


async def test_an_auditor_verifies_the_topic_with_librdkafka_and_the_sailo_command(
    audit_env: AuditEnv, tmp_path: Path
) -> None:
    rt = await Runtime.start(audit_env.settings, migrate=False)
    try:
        await record_many(audit_env, 23)
        await poll(lambda: all_published(audit_env, 23))
    finally:
        await rt.stop()

    values = await asyncio.to_thread(
        consume_with_librdkafka, audit_env.settings.kafka_bootstrap_servers, audit_env.topic
    )
    dump = tmp_path / "audit.jsonl"
    dump.write_bytes(b"".join(value + b"\n" for value in values))
    key = str(audit_env.public_key)

    intact = await asyncio.to_thread(sailo, audit_env, "audit", "verify", str(dump), "--public-key", key)
    assert intact.returncode == 0, intact.stderr
    assert "audit log intact: 23 entries checked, 20 covered by checkpoints" in intact.stdout

    lines = dump.read_bytes().splitlines()
    at = [
        i for i, line in enumerate(lines) if not line.startswith(b'{"checkpoint"')
    ]  # entry lines by position

    def tampered(change: Callable[[list[bytes]], None]) -> Path:
        copy = list(lines)
        change(copy)
        path = tmp_path / f"tampered-{uuid.uuid4().hex[:6]}.jsonl"
        path.write_bytes(b"".join(line + b"\n" for line in copy))
        return path

    def modify(copy: list[bytes]) -> None:
        copy[at[7]] = copy[at[7]].replace(b'"role":"agent"', b'"role":"admin"')

    def remove(copy: list[bytes]) -> None:
        del copy[at[12]]

    def reorder(copy: list[bytes]) -> None:
        copy[at[16]], copy[at[17]] = copy[at[17]], copy[at[16]]

    def insert(copy: list[bytes]) -> None:
        copy.insert(at[3] + 1, forged_copy(copy[at[3]]))

    cases = [
        (modify, Problem.ENTRY_MODIFIED, 7),
        (remove, Problem.SEQUENCE_GAP, 12),
        (reorder, Problem.SEQUENCE_GAP, 16),
        (insert, Problem.ENTRY_INSERTED, 4),
    ]
    for change, problem, position in cases:
        result = await asyncio.to_thread(
            sailo, audit_env, "audit", "verify", str(tampered(change)), "--public-key", key
        )
        assert result.returncode == 1, (change.__name__, result.stdout, result.stderr)
        assert f"audit log NOT intact: {problem} at position {position}" in result.stderr, change.__name__

    # The live topic, read by the command itself.
    live = await asyncio.to_thread(
        sailo,
        audit_env,
        "audit",
        "verify",
        "--topic",
        "--bootstrap-servers",
        audit_env.settings.kafka_bootstrap_servers,
        "--public-key",
        key,
    )
    assert live.returncode == 0, live.stderr
    assert "23 entries checked" in live.stdout

    exported = tmp_path / "exported.jsonl"
    export = await asyncio.to_thread(sailo, audit_env, "audit", "export", "--out", str(exported))
    assert export.returncode == 0, export.stderr
    assert exported.read_bytes() == dump.read_bytes()  # the same bytes librdkafka saw

    public = await asyncio.to_thread(sailo, audit_env, "audit", "public-key")
    assert public.returncode == 0, public.stderr
    assert public.stdout == audit_env.public_key.read_text()

    missing = await asyncio.to_thread(
        sailo, audit_env, "audit", "verify", "--topic", "no-such-topic", "--public-key", key
    )
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    unkeyed = await asyncio.to_thread(sailo, audit_env, "audit", "verify", str(dump))
    assert unkeyed.returncode == 1 and str(Problem.CHECKPOINT_NO_KEY) in unkeyed.stderr
    # A dump that failed leaves an empty file: that must not pass for a clean audit.
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    nothing = await asyncio.to_thread(sailo, audit_env, "audit", "verify", str(empty), "--public-key", key)
    assert nothing.returncode == 1 and "holds no entries" in nothing.stderr
