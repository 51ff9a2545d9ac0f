"""Retention benchmark: the sweeper beside a bare DELETE of the same rows, measured in the same run.

    make bench-retention                                   (full size: 1,000,000 live artifacts, 100,000 due)
    BENCH_RETENTION_SCALE=0.1 make bench-retention         (a quick run: 100,000 live, 10,000 due)
    .venv/bin/python -m bench.retention --scale 0.1 --batch 1000 --lag-rate 500

Runs on a fresh embedded PostgreSQL (no broker: the sweeper needs none) and prints:

1. Loading: N live artifacts of one register (PRH customer service) written straight into the tables with
   COPY: contacts, one data key per (contact, class), sealed contact events (random bytes of a realistic size),
   artifacts, retention facts and schedule rows, a few active legal holds. A tenth of the artifacts is due.
2. Sweep: the due items swept by services.retention.sweeper.Sweeper (FrozenClock), in items/s, beside a bare
   DELETE of the same rows on an identical copy of the database (CREATE DATABASE ... TEMPLATE, taken before
   either runs): per batch of the same size, one transaction that deletes by array the schedule row, the data
   key and the records.* rows (events, parties, messages, artifact) of each due (contact, class). The sweeper
   does more for each item (reads and hashes the ciphertext, writes a certificate and the audit entry, removes
   contacts left empty); the ratio sweeper / bare DELETE is the figure to watch.
3. Empty sweep: the cost of a sweep when nothing is due, at 1 %, 10 % and 100 % of N live artifacts (median of
   several); the partial index ix_schedule_due keeps it an index probe, so it must stay flat.
4. Deletion lag: items fall due continuously (--lag-rate per second for --lag-seconds) while Sweeper.run sweeps
   every --interval seconds on a clock running at real speed; the lag of an item is from its due time to the
   end of the sweep that deleted it. Target: p99 <= interval + 5 s.

BENCH_PROFILE=/tmp/sweep.txt samples the sweep phase with py-spy (.tools/bin/py-spy or py-spy on PATH).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg

from bench.scratch import scratch_postgres
from services.retention.sweeper import Sweeper, SweepResult
from shared.platform.clock import FrozenClock
from shared.platform.db import create_engine, create_sessionmaker, upgrade_async
from shared.platform.logging import configure_logging
from shared.platform.settings import Settings
from shared.policy.loader import load_policies
from shared.recordstore.keystore import KeyStore
from shared.storage.blobstore import create_blob_store

ROOT = Path(__file__).resolve().parent.parent

FULL_LIVE = 1_000_000
FULL_DUE = 100_000

REGISTER = "prh-customer-service"
POLICY_VERSION = "2021-10-20"
HISTORY, MESSAGES = "contact_history", "messages"
# PRH keeps the contact history 12 months and the messages 2 years from the contact's start. Whole days here:
# the sweeper reads due_at as stored, the Helsinki calendar only matters when the schedule is computed.
PERIOD = {HISTORY: timedelta(days=365), MESSAGES: timedelta(days=730)}
PERIOD_TEXT = {HISTORY: "12 months", MESSAGES: "2 years"}
EVENT_TYPES = {HISTORY: ("chat.started", "chat.ended"), MESSAGES: ("chat.message",)}

NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
"""When the sweep runs: the due items fell due during the day before."""
DUE_WINDOW = timedelta(days=1)
FUTURE_FROM = NOW + timedelta(hours=1)
"""Nothing that is not due at NOW falls due before this; the lag run lives in between."""
FUTURE_WINDOW = timedelta(days=360)
QUIET = NOW - DUE_WINDOW - timedelta(days=1)
"""A time at which nothing is due: the empty sweeps run at it."""
LAG_START = NOW + timedelta(minutes=10)


@dataclass(frozen=True)
class ContactSpec:
    started_at: datetime
    due: tuple[tuple[str, datetime], ...]
    """(artifact class, due time) of each class the contact still holds."""


def population(live: int, due: int) -> Iterator[ContactSpec]:
    """`live` artifacts of which `due` fall due in the day before NOW, in the order ingest would have stored them.

    Two kinds of contact, as a register in its steady state holds them: older ones (12 to 24 months) whose
    contact history is already gone and whose messages remain, and younger ones holding both classes. Half of
    the due items are the messages of the oldest contacts (the contact goes with them), half the contact
    history of the oldest younger ones (the contact stays). Each kind is stored by start time, so the due rows
    cluster at the start of each kind, as rows ingested long ago do.
    """
    if due > live // 2:
        raise ValueError("at most half of the live artifacts can be due")
    due_messages, due_history = due - due // 2, due // 2
    old = max(live // 5, due_messages)
    young = (live - old) // 2
    old = live - 2 * young
    if young < due_history:
        raise ValueError("too few live artifacts for that many due")

    def due_time(index: int, due_count: int, total: int) -> datetime:
        if index < due_count:
            return NOW - DUE_WINDOW + DUE_WINDOW * ((index + 0.5) / due_count)
        return FUTURE_FROM + FUTURE_WINDOW * ((index - due_count) / max(total - due_count, 1))

    for i in range(old):
        at = due_time(i, due_messages, old)
        yield ContactSpec(at - PERIOD[MESSAGES], ((MESSAGES, at),))
    for j in range(young):
        at = due_time(j, due_history, young)
        started = at - PERIOD[HISTORY]
        yield ContactSpec(started, ((HISTORY, at), (MESSAGES, started + PERIOD[MESSAGES])))


def arrivals(start: datetime, rate: float, seconds: float) -> Iterator[ContactSpec]:
    """Items falling due one after another at `rate` per second from `start`, alternating the two kinds."""
    for k in range(round(rate * seconds)):
        at = start + timedelta(seconds=k / rate)
        if k % 2:
            yield ContactSpec(at - PERIOD[MESSAGES], ((MESSAGES, at),))
        else:
            started = at - PERIOD[HISTORY]
            yield ContactSpec(started, ((HISTORY, at), (MESSAGES, started + PERIOD[MESSAGES])))


@dataclass
class Loaded:
    contacts: int = 0
    artifacts: int = 0
    events: int = 0
    seconds: float = 0.0
    due_before: datetime = NOW
    due: list[tuple[datetime, UUID, str]] = field(default_factory=list)
    """(due time, contact, class) of every item due at `due_before`, in due order."""


_COLUMNS = {
    ("records", "contacts"): (
        "contact_ref register policy_version channel started_at ended_at last_event_at agent_id event_count"
    ),
    ("retention", "contact_facts"): (
        "contact_ref register started_at ended_at last_event_at case_history message_times artifact_classes"
    ),
    ("keys", "data_keys"): "contact_ref artifact_class wrapped_key kek_id",
    ("records", "artifacts"): "contact_ref artifact_class register first_at last_at status",
    ("records", "contact_events"): (
        "event_id contact_ref type artifact_class occurred_at received_at content_digest sealed"
    ),
    ("retention", "schedule"): (
        "contact_ref artifact_class item register policy_version action trigger trigger_at due_at reason state"
    ),
}


async def load(
    dsn: str,
    contacts: Iterator[ContactSpec],
    *,
    events_per_artifact: int = 2,
    sealed_bytes: int = 400,
    due_before: datetime = NOW,
    chunk: int = 20_000,
) -> Loaded:
    """COPY the contacts into the database at `dsn`, then VACUUM ANALYZE what was written."""
    loaded = Loaded(due_before=due_before)
    started = time.perf_counter()

    def next_rows() -> dict[tuple[str, str], list[tuple[Any, ...]]] | None:
        batch = [spec for _, spec in zip(range(chunk), contacts, strict=False)]
        return _rows(batch, loaded, events_per_artifact, sealed_bytes) if batch else None

    connection = await asyncpg.connect(dsn)
    try:
        rows = next_rows()
        while rows is not None:
            # The next chunk is made in a thread while PostgreSQL takes this one in.
            following = asyncio.create_task(asyncio.to_thread(next_rows))
            # Parents first: the foreign keys of the records tables check each row against its contact.
            for (schema, table), columns in _COLUMNS.items():
                await connection.copy_records_to_table(
                    table, schema_name=schema, columns=columns.split(), records=rows[(schema, table)]
                )
            rows = await following
        for name in _COLUMNS:
            await connection.execute(f"VACUUM ANALYZE {'.'.join(name)}")
    finally:
        await connection.close()
    loaded.due.sort()
    loaded.seconds = time.perf_counter() - started
    return loaded


def _rows(
    batch: list[ContactSpec], loaded: Loaded, events_per_artifact: int, sealed_bytes: int
) -> dict[tuple[str, str], list[tuple[Any, ...]]]:
    rows: dict[tuple[str, str], list[tuple[Any, ...]]] = {table: [] for table in _COLUMNS}
    artifacts = sum(len(spec.due) for spec in batch)
    # Ciphertext is indistinguishable from random bytes, and as incompressible.
    noise = memoryview(os.urandom(artifacts * events_per_artifact * sealed_bytes + artifacts * 60))
    offset = 0
    for n, spec in enumerate(batch):
        ref = uuid.uuid4()
        ended = spec.started_at + timedelta(minutes=8)
        classes = [artifact_class for artifact_class, _ in spec.due]
        rows["records", "contacts"].append(
            (ref, REGISTER, POLICY_VERSION, "chat", spec.started_at, ended, ended, f"agent-{n % 50}", 0)
        )
        rows["retention", "contact_facts"].append(
            (ref, REGISTER, spec.started_at, ended, ended, "[]", "[]", json.dumps(classes))
        )
        for artifact_class, due_at in spec.due:
            rows["keys", "data_keys"].append(
                (ref, artifact_class, bytes(noise[offset : offset + 60]), "kek-1")
            )
            offset += 60
            rows["records", "artifacts"].append(
                (ref, artifact_class, REGISTER, spec.started_at, ended, "active")
            )
            types = EVENT_TYPES[artifact_class]
            for e in range(events_per_artifact):
                at = spec.started_at + timedelta(seconds=30 * e)
                rows["records", "contact_events"].append(
                    (
                        uuid.uuid4(),
                        ref,
                        types[e % len(types)],
                        artifact_class,
                        at,
                        at + timedelta(milliseconds=120),
                        os.urandom(32).hex(),
                        bytes(noise[offset : offset + sealed_bytes]),
                    )
                )
                offset += sealed_bytes
            reason = (
                f"kept until {due_at.date().isoformat()} by {REGISTER} v{POLICY_VERSION} "
                f"{artifact_class}/{PERIOD_TEXT[artifact_class]} from the contact's start"
            )
            rows["retention", "schedule"].append(
                (
                    ref,
                    artifact_class,
                    "",
                    REGISTER,
                    POLICY_VERSION,
                    "delete",
                    "contact_start",
                    spec.started_at,
                    due_at,
                    reason,
                    "scheduled",
                )
            )
            if due_at <= loaded.due_before:
                loaded.due.append((due_at, ref, artifact_class))
            loaded.artifacts += 1
            loaded.events += events_per_artifact
        loaded.contacts += 1
    return rows


async def place_holds(dsn: str, count: int) -> None:
    """A few active holds, as a running system has: on contacts that are not due, and on another register.
    Every due item is checked against them when claimed."""
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(
            """
            INSERT INTO retention.holds (scope, target, register, reason, legal_reference, placed_by, placed_at)
            SELECT 'contact', s.contact_ref::text, s.register, 'Complaint under review', 'Hallintolaki 434/2003',
                   gen_random_uuid(), $1
            FROM retention.schedule AS s WHERE s.due_at > $2 ORDER BY s.due_at DESC LIMIT $3
            """,
            NOW,
            FUTURE_FROM,
            count,
        )
        await connection.execute(
            """
            INSERT INTO retention.holds (scope, target, register, reason, legal_reference, placed_by, placed_at)
            VALUES ('register', 'hsy-customer-service', 'hsy-customer-service', 'Audit by the Ombudsman',
                    'Laki eduskunnan oikeusasiamiehestä 197/2002', gen_random_uuid(), $1)
            """,
            NOW,
        )
    finally:
        await connection.close()


# -------------------------------------------------------------------------------------------- measurements


_BARE_DELETES = [
    f"DELETE FROM {table} AS t USING unnest($1::uuid[], $2::varchar[]) AS d(contact_ref, artifact_class)"
    " WHERE t.contact_ref = d.contact_ref AND t.artifact_class = d.artifact_class"
    for table in (
        "retention.schedule",
        "keys.data_keys",
        "records.contact_events",
        "records.parties",
        "records.messages",
        "records.artifacts",
    )
]


async def bare_delete(dsn: str, due: Sequence[tuple[datetime, UUID, str]], batch_size: int) -> float:
    """items/s of deleting the same rows as the sweep with no application logic, batch by batch, one
    transaction per batch: the schedule row, the data key and the records.* rows of each (contact, class)."""
    connection = await asyncpg.connect(dsn)
    try:
        statements = [await connection.prepare(sql) for sql in _BARE_DELETES]
        deleted = 0
        started = time.perf_counter()
        for start in range(0, len(due), batch_size):
            chunk = due[start : start + batch_size]
            refs, classes = [ref for _, ref, _ in chunk], [c for _, _, c in chunk]
            async with connection.transaction():
                for statement in statements:
                    await statement.fetch(refs, classes)
            deleted += len(chunk)
        elapsed = time.perf_counter() - started
        left = await connection.fetchval(
            "SELECT count(*) FROM retention.schedule WHERE due_at <= $1 AND state = 'scheduled'", NOW
        )
    finally:
        await connection.close()
    if left:
        raise RuntimeError(f"the bare DELETE left {left} due schedule rows")
    return deleted / elapsed


class RunningClock:
    """Time from `origin` on, running at the speed of the real clock from the moment this object is made."""

    def __init__(self, origin: datetime) -> None:
        self.origin = origin
        self.started = time.monotonic()

    def now(self) -> datetime:
        return self.origin + timedelta(seconds=time.monotonic() - self.started)


class TimedSweeper(Sweeper):
    """Remembers when each sweep started and ended (by its own clock), to tell when a deletion was committed."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sweeps: list[tuple[datetime, datetime, SweepResult]] = []

    async def sweep(self) -> SweepResult:
        started = self.clock.now()
        result = await super().sweep()
        self.sweeps.append((started, self.clock.now(), result))
        return result


class Bench:
    def __init__(self, admin_url: str, workdir: Path, *, batch_size: int, run: str) -> None:
        self.admin_url = admin_url
        self.workdir = workdir
        self.batch_size = batch_size
        self.run = run
        self.databases: list[str] = []
        base = Settings(_env_file=None)
        self.keystore = KeyStore(kek=base.kek_bytes, kek_id=base.key_encryption_key_id)
        self.policies = load_policies(ROOT / "policies")

    def url(self, name: str) -> str:
        return f"{self.admin_url.rpartition('/')[0]}/{name}"

    def dsn(self, name: str) -> str:
        return self.url(name).replace("postgresql+asyncpg://", "postgresql://")

    async def _admin(self, sql: str) -> None:
        connection = await asyncpg.connect(self.admin_url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    async def create_database(self, name: str, template: str | None = None) -> str:
        full = f"bench_{self.run}_{name}"
        # FILE_COPY: a copy of the files, which for a large template is much faster than WAL-logging it.
        clone = f' TEMPLATE "{template}" STRATEGY FILE_COPY' if template else ""
        await self._admin(f'CREATE DATABASE "{full}"{clone}')
        self.databases.append(full)
        return full

    async def drop_all(self) -> None:
        for name in reversed(self.databases):
            await self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.databases.clear()

    async def migrated_template(self) -> str:
        name = await self.create_database("schema")
        await upgrade_async(Settings(_env_file=None, database_url=self.url(name)))
        return name

    def sweeper(self, database: str, clock: Any, *, timed: bool = False) -> tuple[Sweeper, Any]:
        settings = Settings(_env_file=None, database_url=self.url(database), service_name="retention-bench")
        engine = create_engine(settings)
        kind = TimedSweeper if timed else Sweeper
        sweeper = kind(
            sessionmaker=create_sessionmaker(engine),
            keystore=self.keystore,
            blobs=create_blob_store(f"file://{self.workdir / 'blobs'}"),
            clock=clock,
            policies=self.policies,
            batch_size=self.batch_size,
        )
        return sweeper, engine

    async def sweep_due(self, database: str, expected: int) -> float:
        """items/s of sweeping everything due at NOW."""
        sweeper, engine = self.sweeper(database, FrozenClock(NOW))
        profiler = _start_profiler()
        try:
            started = time.perf_counter()
            result = await sweeper.sweep()
            elapsed = time.perf_counter() - started
        finally:
            _stop_profiler(profiler)
            await sweeper.blobs.close()
            await engine.dispose()
        if result.deleted != expected:
            raise RuntimeError(f"the sweep deleted {result.deleted} items, {expected} were due")
        return result.deleted / elapsed

    async def empty_sweep_ms(self, databases: Sequence[str], repeats: int) -> list[float]:
        """Median milliseconds of a sweep with nothing due, per database; taken in turns, so a slow moment of
        the machine falls on every size alike."""
        sweepers = [self.sweeper(database, FrozenClock(QUIET)) for database in databases]
        times: list[list[float]] = [[] for _ in databases]
        try:
            for attempt in range(repeats + 3):
                for (sweeper, _), taken in zip(sweepers, times, strict=True):
                    started = time.perf_counter()
                    result = await sweeper.sweep()
                    if attempt >= 3:  # the first ones open connections and prepare statements
                        taken.append(time.perf_counter() - started)
                    if result.deleted or result.redacted:
                        raise RuntimeError("an empty sweep found something due")
        finally:
            for sweeper, engine in sweepers:
                await sweeper.blobs.close()
                await engine.dispose()
        return [statistics.median(taken) * 1000 for taken in times]

    async def lag(self, database: str, options: Options) -> LagFigures:
        """Items fall due at `lag_rate` per second for `lag_seconds` while Sweeper.run sweeps every `interval`."""
        rate, seconds, interval = options.lag_rate, options.lag_seconds, options.interval
        loaded = await load(
            self.dsn(database),
            arrivals(LAG_START, rate, seconds),
            events_per_artifact=options.events_per_artifact,
            sealed_bytes=options.sealed_bytes,
            due_before=FUTURE_FROM,
        )
        expected = {(ref, artifact_class): at for at, ref, artifact_class in loaded.due}
        clock = RunningClock(LAG_START - timedelta(seconds=1))
        sweeper, engine = self.sweeper(database, clock, timed=True)
        assert isinstance(sweeper, TimedSweeper)
        deadline = LAG_START + timedelta(seconds=seconds + interval + 30)
        task = asyncio.create_task(sweeper.run(interval))
        connection = await asyncpg.connect(self.dsn(database))
        try:
            # Until the last item is due and then until every one is done (or clearly never will be).
            while clock.now() < LAG_START + timedelta(seconds=seconds) or (
                clock.now() < deadline
                and await connection.fetchval(
                    "SELECT count(*) FROM retention.schedule WHERE state = 'scheduled' AND due_at < $1",
                    FUTURE_FROM,
                )
            ):
                await asyncio.sleep(0.2)
            await sweeper.stop()
            await task
            certificates = await connection.fetch(
                "SELECT contact_ref, artifact_class, done_at FROM retention.certificates WHERE done_at > $1",
                LAG_START - timedelta(seconds=2),
            )
        finally:
            await connection.close()
            await sweeper.blobs.close()
            await engine.dispose()
        ends = sorted((start, end) for start, end, _ in sweeper.sweeps)
        lags = []
        for row in certificates:
            due_at = expected.pop((row["contact_ref"], row["artifact_class"]), None)
            if due_at is None:
                continue
            # done_at is when its batch began; the deletion is certain once that sweep has ended.
            end = next((end for start, end in ends if start <= row["done_at"] <= end), ends[-1][1])
            lags.append((end - due_at).total_seconds())
        lags.sort()
        return LagFigures(
            items=len(loaded.due),
            missed=len(expected),
            sweeps=len(sweeper.sweeps),
            p50=statistics.median(lags) if lags else float("nan"),
            p99=lags[max(0, int(len(lags) * 0.99) - 1)] if lags else float("nan"),
            worst=lags[-1] if lags else float("nan"),
        )


@dataclass
class LagFigures:
    items: int
    missed: int
    sweeps: int
    p50: float
    p99: float
    worst: float


@dataclass
class Figures:
    live: int
    due: int
    batch_size: int
    loaded: Loaded
    sweep_rate: float = 0.0
    bare_rate: float = 0.0
    empty_ms: dict[int, float] = field(default_factory=dict)
    lag: LagFigures | None = None
    lag_rate: float = 0.0
    interval: float = 0.0


@dataclass(frozen=True)
class Options:
    scale: float = 1.0
    batch_size: int = 500
    events_per_artifact: int = 2
    sealed_bytes: int = 400
    empty_repeats: int = 15
    lag_rate: float = 200.0
    lag_seconds: float = 20.0
    interval: float = 1.0
    holds: int = 5

    @property
    def live(self) -> int:
        return max(100, round(FULL_LIVE * self.scale))

    @property
    def due(self) -> int:
        return max(10, round(FULL_DUE * self.scale))


async def measure(admin_url: str, workdir: Path, options: Options, *, log: Any = print) -> Figures:
    """Every measurement, in databases of its own on the server at `admin_url` (dropped at the end)."""
    bench = Bench(admin_url, workdir, batch_size=options.batch_size, run=uuid.uuid4().hex[:8])
    try:
        template = await bench.migrated_template()
        main = await bench.create_database("main", template)
        log(f"  loading {options.live:,} live artifacts ({options.due:,} due) ...")
        loaded = await load(
            bench.dsn(main),
            population(options.live, options.due),
            events_per_artifact=options.events_per_artifact,
            sealed_bytes=options.sealed_bytes,
        )
        await place_holds(bench.dsn(main), options.holds)
        figures = Figures(options.live, options.due, options.batch_size, loaded)
        log(
            f"  loaded {loaded.artifacts:,} artifacts ({loaded.contacts:,} contacts, {loaded.events:,} events) "
            f"in {loaded.seconds:.1f} s"
        )
        # The copy the bare DELETE works on: same rows, same indexes, same statistics, taken before either ran.
        copy = await bench.create_database("copy", main)

        sizes = sorted({max(100, options.live // 100), max(100, options.live // 10)} - {options.live})
        databases = {options.live: main}
        for size in sizes:
            databases[size] = await bench.create_database(f"live{size}", template)
            await load(
                bench.dsn(databases[size]),
                population(size, 0),
                events_per_artifact=options.events_per_artifact,
                sealed_bytes=options.sealed_bytes,
            )
            await place_holds(bench.dsn(databases[size]), options.holds)
        medians = await bench.empty_sweep_ms(list(databases.values()), options.empty_repeats)
        figures.empty_ms = dict(zip(databases, medians, strict=True))

        figures.bare_rate = await bare_delete(bench.dsn(copy), loaded.due, options.batch_size)
        figures.sweep_rate = await bench.sweep_due(main, len(loaded.due))

        if options.lag_seconds > 0:
            figures.lag_rate, figures.interval = options.lag_rate, options.interval
            figures.lag = await bench.lag(main, options)
        return figures
    finally:
        await bench.drop_all()


def report(figures: Figures) -> list[str]:
    lines = [
        "| measure | result | target |",
        "|---|---|---|",
        f"| load (COPY) of {figures.loaded.artifacts:,} live artifacts, {figures.loaded.contacts:,} contacts, "
        f"{figures.loaded.events:,} events | {figures.loaded.seconds:.1f} s "
        f"({figures.loaded.artifacts / figures.loaded.seconds:,.0f} artifacts/s) | |",
        f"| sweep of {figures.due:,} due items, batches of {figures.batch_size} | "
        f"{figures.sweep_rate:,.0f} items/s | |",
        f"| bare DELETE of the same rows, same run | {figures.bare_rate:,.0f} items/s | |",
        f"| ratio sweep / bare DELETE | {figures.sweep_rate / figures.bare_rate:.2f} | >= 0.5"
        + ("" if figures.sweep_rate / figures.bare_rate >= 0.5 else ", **not met**")
        + " |",
    ]
    sizes = sorted(figures.empty_ms)
    lines.append(
        "| empty sweep at "
        + " / ".join(f"{size:,}" for size in sizes)
        + " live artifacts (median) | "
        + " / ".join(f"{figures.empty_ms[size]:.2f} ms" for size in sizes)
        + " | flat |"
    )
    spread = figures.empty_ms[sizes[-1]] / figures.empty_ms[sizes[0]]
    lines.append(f"| ratio largest / smallest | {spread:.2f} | ~1 |")
    if figures.lag is not None:
        lag, target = figures.lag, figures.interval + 5
        met = lag.missed == 0 and lag.p99 <= target
        lines.append(
            f"| deletion lag, {lag.items:,} items falling due at {figures.lag_rate:,.0f}/s, sweep every "
            f"{figures.interval:g} s ({lag.sweeps} sweeps) | p50 {lag.p50:.2f} s, p99 {lag.p99:.2f} s, "
            f"max {lag.worst:.2f} s, not deleted {lag.missed} | p99 <= {target:g} s"
            + ("" if met else ", **not met**")
            + " |"
        )
    return lines


# ------------------------------------------------------------------------------------------------- profile


def _start_profiler() -> subprocess.Popen[bytes] | None:
    output = os.environ.get("BENCH_PROFILE")
    if not output:
        return None
    py_spy = ROOT / ".tools" / "bin" / "py-spy"
    binary = str(py_spy) if py_spy.exists() else shutil.which("py-spy")
    if binary is None:
        print("  BENCH_PROFILE is set but py-spy was not found")
        return None
    process = subprocess.Popen(
        [binary, "record", "--format", "raw", "--rate", "200", "-o", output, "--pid", str(os.getpid())]
    )
    time.sleep(1.0)  # py-spy attaches before the measured part starts
    return process


def _stop_profiler(process: subprocess.Popen[bytes] | None) -> None:
    if process is None:
        return
    process.send_signal(2)  # SIGINT: py-spy writes its output and exits
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()


async def main() -> None:

    defaults = Options()
    parser = argparse.ArgumentParser(prog="python -m bench.retention", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--scale",
        type=float,
        default=float(os.environ.get("BENCH_RETENTION_SCALE", defaults.scale)),
        help="1.0: 1,000,000 live artifacts, 100,000 due (default: BENCH_RETENTION_SCALE or 1.0)",
    )
    parser.add_argument("--batch", type=int, default=None, help="items per sweeper transaction (settings)")
    parser.add_argument("--events-per-artifact", type=int, default=defaults.events_per_artifact)
    parser.add_argument("--sealed-bytes", type=int, default=defaults.sealed_bytes)
    parser.add_argument("--empty-repeats", type=int, default=defaults.empty_repeats)
    parser.add_argument("--lag-rate", type=float, default=defaults.lag_rate, help="items falling due per s")
    parser.add_argument("--lag-seconds", type=float, default=defaults.lag_seconds, help="0: no lag run")
    parser.add_argument("--interval", type=float, default=defaults.interval, help="sweep interval, s")
    args = parser.parse_args()
    options = Options(
        scale=args.scale,
        batch_size=args.batch or Settings().retention_sweep_batch,
        events_per_artifact=args.events_per_artifact,
        sealed_bytes=args.sealed_bytes,
        empty_repeats=args.empty_repeats,
        lag_rate=args.lag_rate,
        lag_seconds=args.lag_seconds,
        interval=args.interval,
    )
    configure_logging(service="bench", level="WARNING", json=False)
    with scratch_postgres("retention") as (url, workdir):
        print(
            f"Sailo retention benchmark: scale {options.scale:g} ({options.live:,} live artifacts, "
            f"{options.due:,} due), {options.events_per_artifact} events of {options.sealed_bytes} B per "
            f"artifact, batches of {options.batch_size}; embedded PostgreSQL, no broker"
        )
        figures = await measure(url, workdir, options)
        print("\n".join(report(figures)))


if __name__ == "__main__":
    asyncio.run(main())
