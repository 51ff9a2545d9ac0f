"""DSR benchmark: subject lookup and the access package beside raw reads of the same rows and blobs, measured
in the same run.

    make bench-dsr                          (full size: 1,000,000 contacts, a subject with 50 recorded calls)
    BENCH_DSR_SCALE=0.1 make bench-dsr      (a quick run: 100,000 contacts)
    .venv/bin/python -m bench.dsr --scale 0.1 --contacts 50 --audio-seconds 60 --lookups 1000

Runs on a fresh embedded PostgreSQL (no broker: neither the lookup nor the package needs one) and prints:

1. Loading: N inbound calls to one register (PRH customer service), a year of them. N - C are other callers'
   calls, written straight into the tables with COPY as the record store holds them: the contact, its data
   key, its artifact, three sealed events (random bytes of the size ingest's are), the customer and the
   official as parties, and two blind-index rows (the caller's phone number and the contact id, keyed digests
   computed as ingest computes them, so the DSR search finds them). Callers make 1 to 40 calls each, two on
   average. The subject's C calls of the last five months go the way ingest takes them, each at its place in
   time among the others: services.ingest.service.intake.IntakeService validates and seals every event (a stand-in
   for the broker acknowledges at once and keeps what was published), RecordStore.apply writes them as the
   record store consumer does, and RecordingService.store encrypts a WAV of --audio-seconds (8 kHz, 16-bit
   mono: 16 KB/s) per call into a filesystem blob store.
2. Lookup: --lookups requests, one in ten for a phone number no contact has, the rest for callers drawn at
   random; each registered and its identity verified beforehand. Timed: services.dsr.service.lifecycle.search for the
   request in a transaction of its own (the request locked, its candidates, audit entries and request_changed
   event written, committed), what the search route does without HTTP. Beside each, in turns, the raw
   baseline: a prepared SELECT on records.subject_index by the same digest (asyncpg). p50 and p95 of both.
3. Package: the subject's request is searched and its C candidates confirmed; then
   services.dsr.package.build_access_package makes the access copy (decrypting every event, party and
   recording, zipping, encrypting and storing the ZIP), beside the raw read of the same rows (the contacts,
   their sealed events and parties, recording artifacts and data keys: asyncpg, by array) and the same blobs
   (the recordings' ciphertext through the blob store, nothing decrypted); median of --package-repeats, in
   turns. The first copy is opened and every recording in it checked against the uploaded WAV.

Every ratio is raw time / benchmarked time: how fast the application path runs relative to the raw baseline
of the same run, higher is better and 1.0 is as fast as the raw baseline (the retention benchmark's ratios of
rates read the same way). Absolute times vary from run to run on a shared machine; the ratios are the figures
to watch.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import math
import os
import random
import statistics
import time
import uuid
import wave
import zipfile
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, cast
from uuid import UUID

import asyncpg
from aiokafka import AIOKafkaProducer
from sqlalchemy import select

from bench.retention import NOW, POLICY_VERSION, REGISTER, Bench
from bench.scratch import scratch_postgres
from services.dsr import letters
from services.dsr.models import DataSubjectRequest
from services.dsr.package import PackageInfo, build_access_package, open_package
from services.dsr.repository import confirmed_candidates
from services.dsr.service.lifecycle import (
    Identifier,
    decide_candidate,
    register_request,
    search,
    verify_identity,
)
from services.ingest.service.contacts import ContactService
from services.ingest.service.folding import fold_contacts
from services.ingest.service.intake import IntakeService
from services.ingest.service.recordings import RecordingService
from shared.app import Caller
from shared.audit.log import actor_ref
from shared.contracts.events import SealedContactEvent, example_event
from shared.contracts.identifiers import normalise_phone
from shared.contracts.vocabulary import ArtifactClass
from shared.platform.clock import HELSINKI, FrozenClock
from shared.platform.crypto import BlindIndex, generate_data_key
from shared.platform.db import create_engine, create_sessionmaker
from shared.platform.logging import configure_logging
from shared.platform.settings import Settings
from shared.policy.model import PolicyVersion, RightName
from shared.recordstore.contacts import StoredContact
from shared.recordstore.keystore import KeyStore
from shared.recordstore.models import Contact
from shared.recordstore.store import RecordStore
from shared.security.auth import Principal, Role
from shared.storage.blobstore import BlobStore, create_blob_store

FULL_CONTACTS = 1_000_000

SPAN = timedelta(days=360)
"""The other callers' calls: the year before NOW (PRH keeps the contact history 12 months)."""
SUBJECT_SPAN = timedelta(days=150)
"""The subject's calls: the five months before NOW (PRH keeps recordings 6 months)."""
SUBJECT_NUMBER = "045 123 4567"
"""As the phone system reports the subject's number; ingest stores it as +358451234567."""
REQUESTER_NUMBER = "+358 45 123 4567"
"""As the subject writes it on the request."""
MAX_CALLS = 40
SAMPLE_RATE = 8000
HISTORY = ArtifactClass.CONTACT_HISTORY.value
# The sizes of what ingest and the record store write for a call (sealed events and parties, the wrapped data
# key), for the rows written with COPY.
SEALED_BYTES = {"call.started": 189, "call.answered": 149, "call.ended": 102}
PARTY_BYTES = {"customer": 54, "agent": 67}
WRAPPED_KEY_BYTES = 61
CALL_STEPS = (("call.started", timedelta(0)), ("call.answered", timedelta(seconds=20)))
CALL_LENGTH = timedelta(minutes=4)
WARMUP = 5
"""Lookups done first and not counted: the first ones open connections and prepare statements."""


def caller_number(caller: int) -> str:
    """The E.164 number of another caller (040 numbers); 050 numbers are nobody's (the absent subjects)."""
    return f"+35840{1_000_000 + caller:07d}"


def absent_number(index: int) -> str:
    return f"+35850{1_000_000 + index:07d}"


def calls_per_caller(contacts: int, rng: random.Random) -> list[int]:
    """How many calls each caller made, adding up to `contacts`: most call once or twice, a few up to
    MAX_CALLS times (1 + a geometric number, two on average)."""
    counts: list[int] = []
    left = contacts
    while left > 0:
        count = min(1 + int(rng.expovariate(0.7)), MAX_CALLS, left)
        counts.append(count)
        left -= count
    return counts


def recording(seconds: float, seed: int) -> bytes:
    """A mono 16-bit PCM WAV at 8 kHz; its samples are noise drawn from `seed`, so every call's audio differs
    and can be made again to check a copy byte for byte."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(random.Random(seed).randbytes(int(seconds * SAMPLE_RATE) * 2))
    return buffer.getvalue()


def subject_audio(options: Options, number: int) -> bytes:
    """The WAV uploaded for the subject's call `number` (1 = the earliest), as the package numbers them."""
    return recording(options.audio_seconds, options.seed * 1000 + number)


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


# ------------------------------------------------------------------------------------------------- loading


_COLUMNS = {
    ("records", "contacts"): (
        "contact_ref register policy_version channel started_at ended_at last_event_at direction agent_id "
        "event_count"
    ),
    ("keys", "data_keys"): "contact_ref artifact_class wrapped_key kek_id",
    ("records", "artifacts"): "contact_ref artifact_class register first_at last_at status",
    ("records", "contact_events"): (
        "event_id contact_ref type artifact_class occurred_at received_at content_digest sealed"
    ),
    ("records", "parties"): "contact_ref role identity_digest agent_id artifact_class sealed first_seen_at",
    ("records", "subject_index"): "digest kind contact_ref",
}


@dataclass
class Population:
    """Who made the other callers' calls: contact i (in time order) is a call of caller `caller_of[i]`."""

    caller_of: list[int]
    calls: list[int]
    """Calls per caller."""

    @classmethod
    def draw(cls, contacts: int, rng: random.Random) -> Population:
        calls = calls_per_caller(contacts, rng)
        caller_of = [caller for caller, count in enumerate(calls) for _ in range(count)]
        rng.shuffle(caller_of)
        return cls(caller_of, calls)


def _started(index: int, total: int) -> datetime:
    return NOW - SPAN + SPAN * ((index + 0.5) / total)


def _rows(
    population: Population, start: int, end: int, blind_index: BlindIndex, kek_id: str
) -> dict[tuple[str, str], list[tuple[Any, ...]]]:
    rows: dict[tuple[str, str], list[tuple[Any, ...]]] = {table: [] for table in _COLUMNS}
    total = len(population.caller_of)
    per_contact = sum(SEALED_BYTES.values()) + sum(PARTY_BYTES.values()) + WRAPPED_KEY_BYTES
    # Ciphertext is indistinguishable from random bytes, and as incompressible.
    noise = memoryview(os.urandom((end - start) * per_contact))
    offset = 0

    def take(size: int) -> bytes:
        nonlocal offset
        offset += size
        return bytes(noise[offset - size : offset])

    for i in range(start, end):
        contact_id = f"pbx-{i:08d}"
        ref = blind_index.pseudonym("contact", REGISTER, contact_id)
        started = _started(i, total)
        ended = started + CALL_LENGTH
        agent = f"agent-{i % 50}"
        rows["records", "contacts"].append(
            (ref, REGISTER, POLICY_VERSION, "phone", started, ended, ended, "inbound", agent, 3)
        )
        rows["keys", "data_keys"].append((ref, HISTORY, take(WRAPPED_KEY_BYTES), kek_id))
        rows["records", "artifacts"].append((ref, HISTORY, REGISTER, started, ended, "active"))
        for event_type, at in ((t, started + d) for t, d in (*CALL_STEPS, ("call.ended", CALL_LENGTH))):
            rows["records", "contact_events"].append(
                (
                    uuid.uuid4(),
                    ref,
                    event_type,
                    HISTORY,
                    at,
                    at + timedelta(milliseconds=120),
                    os.urandom(32).hex(),
                    take(SEALED_BYTES[event_type]),
                )
            )
        for role, size in PARTY_BYTES.items():
            rows["records", "parties"].append(
                (
                    ref,
                    role,
                    os.urandom(32).hex(),
                    agent if role == "agent" else None,
                    HISTORY,
                    take(size),
                    started + (CALL_STEPS[1][1] if role == "agent" else timedelta(0)),
                )
            )
        phone = caller_number(population.caller_of[i])
        rows["records", "subject_index"].append((blind_index.digest("phone", phone).hex(), "phone", ref))
        rows["records", "subject_index"].append(
            (blind_index.digest("contact_id", contact_id).hex(), "contact_id", ref)
        )
    return rows


async def load(
    dsn: str,
    population: Population,
    blind_index: BlindIndex,
    kek_id: str,
    *,
    between: Callable[[datetime], Awaitable[None]] | None = None,
    chunk: int = 20_000,
) -> float:
    """COPY the other callers' calls into the database at `dsn` in time order, then VACUUM ANALYZE; before
    each chunk, `between(end of the chunk's time)` writes what else happened until then. Returns seconds."""
    started = time.perf_counter()
    total = len(population.caller_of)

    def rows_of(start: int) -> dict[tuple[str, str], list[tuple[Any, ...]]] | None:
        if start >= total:
            return None
        return _rows(population, start, min(start + chunk, total), blind_index, kek_id)

    connection = await asyncpg.connect(dsn)
    try:
        start = 0
        rows = rows_of(start)
        while rows is not None:
            # The next chunk is made in a thread while PostgreSQL takes this one in.
            following = asyncio.create_task(asyncio.to_thread(rows_of, start + chunk))
            if between is not None:
                await between(_started(min(start + chunk, total), total))
            # Parents first: the foreign keys of the records tables check each row against its contact.
            for (schema, table), columns in _COLUMNS.items():
                await connection.copy_records_to_table(
                    table, schema_name=schema, columns=columns.split(), records=rows[(schema, table)]
                )
            rows = await following
            start += chunk
        if between is not None:
            await between(NOW)
        for name in _COLUMNS:
            await connection.execute(f"VACUUM ANALYZE {'.'.join(name)}")
    finally:
        await connection.close()
    return time.perf_counter() - started


class KeptBroker:
    """Stands in for the broker when the subject's events go through ingest: acknowledges every message at
    once and keeps it, for the record store to apply as its consumer would after reading the topic."""

    def __init__(self) -> None:
        self.kept: list[bytes] = []

    async def send(self, topic: str, *, key: bytes, value: bytes) -> asyncio.Future[bool]:
        self.kept.append(value)
        acknowledged: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        acknowledged.set_result(True)
        return acknowledged

    def take(self) -> list[SealedContactEvent]:
        events = [SealedContactEvent.model_validate_json(value) for value in self.kept]
        self.kept.clear()
        return events


class Run:
    """The benchmark's database with what the services build on it at start: engine, sessions, blind index,
    blob store."""

    def __init__(self, bench: Bench, database: str, blob_root: Path) -> None:
        self.bench = bench
        self.settings = Settings(_env_file=None, database_url=bench.url(database), service_name="dsr-bench")
        self.dsn = bench.dsn(database)
        self.engine = create_engine(self.settings)
        self.sessionmaker = create_sessionmaker(self.engine)
        self.blind_index = BlindIndex(self.settings.blind_index_key_bytes)
        self.blobs = create_blob_store(f"file://{blob_root}")
        self.caseworker = actor_ref(self.blind_index, "bench-caseworker")
        self.caller = Caller(
            Principal(subject="bench-caseworker", role=Role.CASEWORKER),
            self.caseworker,
            "dsr",
            FrozenClock(NOW),
        )

    def keystore(self) -> KeyStore:
        """A key store of its own, as each service process has: nothing cached from another step's work."""
        return KeyStore(kek=self.settings.kek_bytes, kek_id=self.settings.key_encryption_key_id)

    async def close(self) -> None:
        await self.blobs.close()
        await self.engine.dispose()


@dataclass
class Subject:
    """The data subject whose calls the package is built from, written through ingest."""

    times: list[datetime]
    refs: list[UUID] = field(default_factory=list)
    """In time order: refs[n - 1] is the contact numbered n in the package."""
    audio_bytes: int = 0
    seconds: float = 0.0


class SubjectWriter:
    """Writes the subject's calls the way ingest does: intake (validation, keys, sealing, blind index), the
    record store, the recording upload."""

    def __init__(self, run: Run, options: Options) -> None:
        self.run = run
        self.options = options
        self.broker = KeptBroker()
        keystore = run.keystore()
        # The objects ingest builds in its lifespan, the stand-in in the broker's place.
        self.intake = IntakeService(
            sessionmaker=run.sessionmaker,
            producer=cast(AIOKafkaProducer, self.broker),
            policies=run.bench.policies,
            keystore=keystore,
            blind_index=run.blind_index,
            clock=FrozenClock(NOW),
            topic="sailo.contact-events",
        )
        self.store = RecordStore(keystore, run.blind_index)
        self.recordings = RecordingService(
            sessionmaker=run.sessionmaker,
            contacts=ContactService(
                sessionmaker=run.sessionmaker,
                blind_index=run.blind_index,
                policies=run.bench.policies,
                keystore=keystore,
            ),
            keystore=keystore,
            blobs=run.blobs,
            max_bytes=run.settings.recording_max_bytes,
        )
        count = options.contacts
        self.subject = Subject(
            [NOW - SUBJECT_SPAN + SUBJECT_SPAN * ((n + 0.5) / count) for n in range(count)]
        )

    async def until(self, at: datetime) -> None:
        """Ingest the subject's calls that started before `at` (the loader calls this between its chunks)."""
        subject = self.subject
        while len(subject.refs) < len(subject.times) and subject.times[len(subject.refs)] < at:
            started = time.perf_counter()
            await self.call(len(subject.refs) + 1)
            subject.seconds += time.perf_counter() - started

    async def call(self, number: int) -> None:
        at = self.subject.times[number - 1]
        contact_id = f"pbx-subject-{number:03d}"
        data: dict[str, dict[str, Any]] = {
            "call.started": {
                "direction": "inbound",
                "caller_number": SUBJECT_NUMBER,
                "service_number": "029 509 5000",
            },
            "call.answered": {"agent": {"id": f"agent-{number % 50}", "name": "Aino Agentti"}},
            "call.ended": {},
        }
        raws = []
        for event_type, offset in (*CALL_STEPS, ("call.ended", CALL_LENGTH)):
            raw = example_event(event_type, event_id=str(uuid.uuid4()))
            raw.update(
                register=REGISTER,
                contact_id=contact_id,
                occurred_at=(at + offset).astimezone(HELSINKI).isoformat(),
                producer="bench-pbx",
                data=data[event_type],
            )
            raws.append(raw)
        outcomes = await self.intake.accept(raws)
        if [o.outcome for o in outcomes] != ["accepted"] * len(raws):
            raise RuntimeError(f"ingest did not accept the subject's call {number}: {outcomes}")
        async with self.run.sessionmaker() as session, session.begin():
            events = self.broker.take()
            await self.store.apply(session, events, fold_contacts(events))
        ref = self.intake.contact_ref(REGISTER, contact_id)
        async with self.run.sessionmaker() as session:
            contact = await session.get(Contact, ref)
        if contact is None:
            raise RuntimeError(f"the record store did not write the subject's call {number}")
        audio = subject_audio(self.options, number)

        async def upload() -> AsyncIterator[bytes]:
            for start in range(0, len(audio), 64 * 1024):
                yield audio[start : start + 64 * 1024]

        artifact, created = await self.recordings.store(
            StoredContact.of(contact), upload(), content_type="audio/wav"
        )
        if not created or artifact.size_bytes != len(audio):
            raise RuntimeError(f"the recording of the subject's call {number} was not stored")
        self.subject.refs.append(ref)
        self.subject.audio_bytes += len(audio)


# -------------------------------------------------------------------------------------------- measurements


@dataclass(frozen=True)
class Lookup:
    request_id: UUID
    digest: str
    expected: int
    """Contacts of the subject: 0 for an absent one."""


async def register_requests(run: Run, numbers: Sequence[tuple[str, int]], *, batch: int = 50) -> list[Lookup]:
    """An access request per (phone number, contacts it has), received and its requester's identity verified,
    as a caseworker registers them before searching."""
    keystore = run.keystore()
    lookups = []
    for start in range(0, len(numbers), batch):
        async with run.sessionmaker() as session, session.begin():
            for number, expected in numbers[start : start + batch]:
                request = await register_request(
                    session,
                    run.caller,
                    keystore=keystore,
                    policies=run.bench.policies,
                    request_type=RightName.ACCESS,
                    registers=[],
                    requester=[Identifier("phone", number)],
                    details=None,
                    restriction_ground=None,
                    received_at=NOW,
                )
                await verify_identity(
                    session, run.caller, request.request_id, method="strong_electronic_identification"
                )
                digest = run.blind_index.digest("phone", normalise_phone(number)).hex()
                lookups.append(Lookup(request.request_id, digest, expected))
    return lookups


async def timed_search(run: Run, keystore: KeyStore, request_id: UUID) -> tuple[float, list[UUID]]:
    """Seconds of one search step as the route takes it (lock the request, search, commit); what it found."""
    async with run.sessionmaker() as session:
        started = time.perf_counter()
        found = await search(session, run.caller, request_id, keystore=keystore, blind_index=run.blind_index)
        await session.commit()
        return time.perf_counter() - started, [c.contact_ref for c in found.candidates]


async def lookup_times(run: Run, requests: Sequence[Lookup]) -> tuple[list[float], list[float]]:
    """Seconds of each search and of the raw SELECT by the same digest, in turns; the first WARMUP left
    out."""
    # The lookups' own key store, as the dsr service has: no request key cached from registering them.
    keystore = run.keystore()
    connection = await asyncpg.connect(run.dsn)
    searched: list[float] = []
    raw: list[float] = []
    try:
        select = await connection.prepare("SELECT contact_ref FROM records.subject_index WHERE digest = $1")
        for n, lookup in enumerate(requests):
            started = time.perf_counter()
            rows = await select.fetch(lookup.digest)
            raw_seconds = time.perf_counter() - started
            search_seconds, found = await timed_search(run, keystore, lookup.request_id)
            if len(rows) != lookup.expected or len(found) != lookup.expected:
                raise RuntimeError(
                    f"lookup {n}: the raw SELECT found {len(rows)} contacts and search {len(found)}, "
                    f"{lookup.expected} expected"
                )
            if n >= WARMUP:
                raw.append(raw_seconds)
                searched.append(search_seconds)
    finally:
        await connection.close()
    return searched, raw


_RAW_READS = (
    "SELECT * FROM records.contacts WHERE contact_ref = ANY($1::uuid[]) ORDER BY started_at, contact_ref",
    "SELECT type, artifact_class, occurred_at, sealed FROM records.contact_events"
    " WHERE contact_ref = ANY($1::uuid[]) ORDER BY occurred_at, received_at, event_id",
    "SELECT role, artifact_class, sealed FROM records.parties WHERE contact_ref = ANY($1::uuid[])"
    " ORDER BY first_seen_at, id",
    "SELECT contact_ref, artifact_class, wrapped_key FROM keys.data_keys WHERE contact_ref = ANY($1::uuid[])",
    "SELECT contact_ref, blob_key FROM records.artifacts"
    " WHERE contact_ref = ANY($1::uuid[]) AND artifact_class = 'recording' ORDER BY contact_ref",
)


async def raw_read(connection: asyncpg.Connection, blobs: BlobStore, refs: list[UUID]) -> tuple[float, int]:
    """Seconds and bytes of reading the package's rows and its recordings' ciphertext, nothing decrypted."""
    started = time.perf_counter()
    results = [await connection.fetch(sql, refs) for sql in _RAW_READS]
    read = sum(len(row["sealed"]) for row in results[1] + results[2])
    for row in results[4]:
        async for chunk in blobs.open_stream(row["blob_key"]):
            read += len(chunk)
    return time.perf_counter() - started, read


async def build_package(run: Run, request_id: UUID, refs: list[UUID]) -> tuple[float, PackageInfo, bytes]:
    """Seconds of building the access copy of `refs` for the request as answering it does (the notice versions
    for the letter, a package key, the package); the package and its key."""
    started = time.perf_counter()
    async with run.sessionmaker() as session, session.begin():
        request = await session.get(DataSubjectRequest, request_id)
        if request is None:
            raise RuntimeError("the subject's request is missing")
        versions: dict[str, PolicyVersion] = {}
        for started_at in await session.scalars(
            select(Contact.started_at).where(Contact.contact_ref.in_(refs))
        ):
            version = run.bench.policies.version_at(REGISTER, started_at) or run.bench.policies.latest(
                REGISTER
            )
            versions[version.version] = version
        findings = [
            letters.RegisterFindings(
                versions=tuple(sorted(versions.values(), key=lambda v: v.effective_from))
            )
        ]
        context = letters.LetterContext(
            case_number=request.case_number,
            received_on=request.received_at.astimezone(HELSINKI).date(),
            dated=NOW.astimezone(HELSINKI).date(),
            last_day=request.last_day,
        )
        package_key = generate_data_key()
        info = await build_access_package(
            session,
            # The dsr service's key store: no data key cached from ingest's writes.
            keystore=run.keystore(),
            blobs=run.blobs,
            contact_refs=refs,
            cover_letter=partial(letters.cover_letter, context, findings),
            package_key=package_key,
            blob_key=f"dsr-packages/{request_id}/{uuid.uuid4()}.zip.enc",
            case_number=request.case_number,
        )
    return time.perf_counter() - started, info, package_key


async def package_files(blobs: BlobStore, info: PackageInfo, package_key: bytes) -> dict[str, bytes]:
    """The files in a stored package by name, decrypted and unzipped."""
    plain = io.BytesIO()
    async for piece in open_package(blobs=blobs, package_key=package_key, blob_key=info.blob_key):
        plain.write(piece)
    with zipfile.ZipFile(plain) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


@dataclass
class Figures:
    contacts: int
    callers: int
    load_seconds: float = 0.0
    subject: Subject | None = None
    search: list[float] = field(default_factory=list)
    raw_lookup: list[float] = field(default_factory=list)
    absent: int = 0
    found_per_subject: float = 0.0
    """Mean contacts found for a subject who has some."""
    subject_search: float = 0.0
    found: list[UUID] = field(default_factory=list)
    """What the subject's search found (the package's contacts)."""
    package: list[float] = field(default_factory=list)
    raw_read: list[float] = field(default_factory=list)
    raw_bytes: int = 0
    first_package: PackageInfo | None = None
    """Kept in the blob store after the run, with its key."""
    first_package_key: bytes = b""


@dataclass(frozen=True)
class Options:
    scale: float = 1.0
    contacts: int = 50
    """The subject's calls, each with a recording."""
    audio_seconds: float = 60.0
    lookups: int = 1000
    package_repeats: int = 5
    seed: int = 2026

    @property
    def total(self) -> int:
        """Every contact in the register, the subject's included."""
        return max(self.contacts + 100, round(FULL_CONTACTS * self.scale))


async def measure(admin_url: str, workdir: Path, options: Options, *, log: Any = print) -> Figures:
    """Every measurement, in a database of its own on the server at `admin_url` (dropped at the end); the blob
    store under `workdir` (left there)."""
    rng = random.Random(options.seed)
    bench = Bench(admin_url, workdir, batch_size=0, run=uuid.uuid4().hex[:8])  # no sweeper: no batch size
    try:
        template = await bench.migrated_template()
        database = await bench.create_database("main", template)
        run = Run(bench, database, workdir / "blobs")
        try:
            return await _measure(run, options, rng, log)
        finally:
            await run.close()
    finally:
        await bench.drop_all()


async def _measure(run: Run, options: Options, rng: random.Random, log: Any) -> Figures:
    population = Population.draw(options.total - options.contacts, rng)
    figures = Figures(contacts=options.total, callers=len(population.calls) + 1)
    log(
        f"  loading {options.total:,} contacts: {options.total - options.contacts:,} calls of "
        f"{len(population.calls):,} callers with COPY, the subject's {options.contacts} through ingest ..."
    )
    writer = SubjectWriter(run, options)
    figures.load_seconds = await load(
        run.dsn, population, run.blind_index, run.settings.key_encryption_key_id, between=writer.until
    )
    figures.subject = writer.subject
    if len(writer.subject.refs) != options.contacts:
        raise RuntimeError(
            f"{len(writer.subject.refs)} of the subject's {options.contacts} calls were written"
        )
    log(f"  loaded in {figures.load_seconds:.1f} s; registering {options.lookups + WARMUP:,} requests ...")

    # One lookup in ten for a number nobody has, the others for callers drawn at random; warm-up ones first.
    figures.absent = options.lookups // 10
    callers = rng.sample(range(len(population.calls)), WARMUP + options.lookups - figures.absent)
    numbers = [(caller_number(c), population.calls[c]) for c in callers[WARMUP:]]
    numbers += [(absent_number(n), 0) for n in range(figures.absent)]
    rng.shuffle(numbers)
    numbers = [(caller_number(c), population.calls[c]) for c in callers[:WARMUP]] + numbers
    requests = await register_requests(run, numbers)
    present = [lookup.expected for lookup in requests[WARMUP:] if lookup.expected]
    figures.found_per_subject = statistics.mean(present) if present else 0.0
    log(f"  {options.lookups:,} lookups ...")
    figures.search, figures.raw_lookup = await lookup_times(run, requests)

    # The subject's request: searched, every candidate confirmed, then the access copy.
    (subject_request,) = await register_requests(run, [(REQUESTER_NUMBER, options.contacts)])
    figures.subject_search, figures.found = await timed_search(
        run, run.keystore(), subject_request.request_id
    )
    async with run.sessionmaker() as session, session.begin():
        for ref in figures.found:
            await decide_candidate(session, run.caller, subject_request.request_id, ref, confirmed=True)
        # What answering the request packages: its confirmed contacts.
        refs = [
            candidate.contact_ref
            for candidate in await confirmed_candidates(session, subject_request.request_id)
        ]
    if sorted(refs) != sorted(writer.subject.refs):
        raise RuntimeError(f"the subject's search found {len(refs)} contacts, not their {options.contacts}")

    log(f"  access package of {options.contacts} contacts, {options.package_repeats} times in turns ...")
    connection = await asyncpg.connect(run.dsn)
    try:
        for attempt in range(options.package_repeats + 1):
            raw_seconds, figures.raw_bytes = await raw_read(connection, run.blobs, refs)
            seconds, info, key = await build_package(run, subject_request.request_id, refs)
            if attempt == 0:  # the first of each warms the caches; it is checked and kept, not counted
                await _check(run, options, info, key)
                figures.first_package, figures.first_package_key = info, key
                continue
            figures.raw_read.append(raw_seconds)
            figures.package.append(seconds)
            await run.blobs.delete(info.blob_key)
    finally:
        await connection.close()
    return figures


async def _check(run: Run, options: Options, info: PackageInfo, key: bytes) -> None:
    """The package holds every call, and each recording is the uploaded WAV byte for byte."""
    if (info.contents.contacts, info.contents.recordings) != (options.contacts, options.contacts):
        raise RuntimeError(
            f"the package holds {info.contents}, {options.contacts} calls with recordings expected"
        )
    found = await package_files(run.blobs, info, key)
    for number in range(1, options.contacts + 1):
        if found.get(f"recordings/{number}-{REGISTER}.wav") != subject_audio(options, number):
            raise RuntimeError(f"recording {number} in the package differs from the one uploaded")


def report(figures: Figures, options: Options) -> list[str]:
    subject, first = figures.subject, figures.first_package
    assert subject is not None and first is not None
    ms, mb = 1000.0, 1_000_000
    search_p50, search_p95 = percentile(figures.search, 0.5), percentile(figures.search, 0.95)
    raw_p50, raw_p95 = percentile(figures.raw_lookup, 0.5), percentile(figures.raw_lookup, 0.95)
    package, raw = statistics.median(figures.package), statistics.median(figures.raw_read)
    return [
        "| measure | result |",
        "|---|---|",
        f"| load of {figures.contacts:,} contacts ({figures.callers:,} callers): COPY, VACUUM ANALYZE, "
        f"and the subject's {options.contacts} calls through ingest ({subject.seconds:.1f} s of it) | "
        f"{figures.load_seconds:.1f} s |",
        f"| search, {len(figures.search):,} requests ({figures.absent} for absent subjects, the others "
        f"finding {figures.found_per_subject:.1f} contacts on average) | p50 {search_p50 * ms:.2f} ms, "
        f"p95 {search_p95 * ms:.2f} ms |",
        f"| raw SELECT on records.subject_index by the same digests, same run | p50 {raw_p50 * ms:.3f} ms, "
        f"p95 {raw_p95 * ms:.3f} ms |",
        f"| ratio raw / search (higher is better) | p50 {raw_p50 / search_p50:.3f}, "
        f"p95 {raw_p95 / search_p95:.3f} |",
        f"| search for the subject ({len(figures.found)} contacts found) | "
        f"{figures.subject_search * ms:.1f} ms |",
        f"| access package of {options.contacts} calls with {options.audio_seconds:g} s recordings "
        f"({subject.audio_bytes / mb:.1f} MB of audio), median of {len(figures.package)} | {package:.3f} s, "
        f"{first.size / mb:.1f} MB stored ({first.size / mb / package:.1f} MB/s) |",
        f"| raw read of the same rows and blobs, not decrypted, same run | {raw:.3f} s, "
        f"{figures.raw_bytes / mb:.1f} MB ({figures.raw_bytes / mb / raw:.1f} MB/s) |",
        f"| ratio raw / package time (higher is better) | {raw / package:.2f} |",
    ]


async def main() -> None:

    defaults = Options()
    parser = argparse.ArgumentParser(
        prog="python -m bench.dsr", description=__doc__.split("\n\n")[0].replace("\n", " ")
    )
    parser.add_argument(
        "--scale",
        type=float,
        default=float(os.environ.get("BENCH_DSR_SCALE", defaults.scale)),
        help="1.0: 1,000,000 contacts (default: BENCH_DSR_SCALE or 1.0)",
    )
    parser.add_argument(
        "--contacts", type=int, default=defaults.contacts, help="the subject's recorded calls"
    )
    parser.add_argument("--audio-seconds", type=float, default=defaults.audio_seconds, help="per recording")
    parser.add_argument("--lookups", type=int, default=defaults.lookups, help="searches timed")
    parser.add_argument("--package-repeats", type=int, default=defaults.package_repeats)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    args = parser.parse_args()
    options = Options(
        scale=args.scale,
        contacts=args.contacts,
        audio_seconds=args.audio_seconds,
        lookups=args.lookups,
        package_repeats=args.package_repeats,
        seed=args.seed,
    )
    configure_logging(service="bench", level="WARNING", json=False)
    with scratch_postgres("dsr") as (url, workdir):
        print(
            f"Sailo DSR benchmark: scale {options.scale:g} ({options.total:,} contacts), a subject with "
            f"{options.contacts} calls and {options.audio_seconds:g} s recordings (8 kHz 16-bit mono WAV), "
            f"{options.lookups:,} lookups; embedded PostgreSQL, no broker"
        )
        figures = await measure(url, workdir, options)
        print("\n".join(report(figures, options)))


if __name__ == "__main__":
    asyncio.run(main())
