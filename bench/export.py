"""Export benchmark: building a research loan's package beside a plain file copy of the same recordings' blobs,
measured in the same run.

    make bench-export                       (50 recordings of 60 s, 16 kHz 16-bit mono WAV: 1.92 MB each)
    .venv/bin/python -m bench.export --recordings 20 --audio-seconds 30 --sample-rate 8000 --repeats 7

Runs on a fresh embedded PostgreSQL (no broker: packaging needs none) and prints:

1. Loading: N calls to one register (PRH customer service) go the way ingest takes them:
   services.ingest.service.intake.IntakeService validates and seals the events (a stand-in for the broker acknowledges
   at once and keeps what was published), RecordStore.apply writes them as the record store consumer does, and
   RecordingService.store encrypts each call's WAV (noise, so it is as incompressible as speech in PCM) into a
   filesystem blob store. An approved loan with the N recordings selected is written straight into export's
   tables (selection is not what is measured).
2. Package: services.export.package.build_loan_package as the package route runs it without HTTP, in a
   transaction: the loan and its items read, each item's contact checked for a restriction, each recording
   read from the blob store, decrypted and checked against its upload's size and SHA-256, zipped with the
   manifest, encrypted under a fresh key, its SHA-256 taken and written (fsynced) to the blob store. Beside it,
   in turns (which goes first alternates), the plain copy: shutil.copyfile of the same N encrypted recording
   blobs into a temporary directory, each copy fsynced and then the directory, as the blob store makes its
   writes durable. Median of --repeats each, after one of each not counted (it warms the caches). The first
   package is opened with its key and every recording checked against the manifest and the uploaded WAV.

Both figures are MB/s of what the step writes (the package's ciphertext; the blobs copied), and the ratio is
package MB/s / copy MB/s: 1.0 would be as fast as a plain copy, higher is better, target >= 0.5. Absolute
throughput varies from run to run on a shared machine; the ratio is the figure to watch.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import random
import shutil
import statistics
import tempfile
import time
import uuid
import wave
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any, cast
from uuid import UUID

from aiokafka import AIOKafkaProducer
from sqlalchemy import select

from bench.dsr import KeptBroker
from bench.retention import NOW, REGISTER, Bench
from bench.scratch import scratch_postgres
from services.export.models import Loan, LoanItem
from services.export.package import BuiltPackage, build_loan_package, recording_file, unpack_package
from services.ingest.service.contacts import ContactService
from services.ingest.service.folding import fold_contacts
from services.ingest.service.intake import IntakeService
from services.ingest.service.recordings import RecordingService
from shared.contracts.events import example_event
from shared.platform.clock import FrozenClock
from shared.platform.crypto import BlindIndex, generate_data_key
from shared.platform.db import create_engine, create_sessionmaker
from shared.platform.logging import configure_logging
from shared.platform.settings import Settings
from shared.recordstore.contacts import StoredContact
from shared.recordstore.keystore import KeyStore
from shared.recordstore.models import Artifact, Contact
from shared.recordstore.store import RecordStore
from shared.storage.blobstore import FileBlobStore

MB = 1_000_000
INSTITUTE = "puhelab"
CALL_STEPS = (("call.started", timedelta(0)), ("call.answered", timedelta(seconds=15)))
UPLOAD_PIECE = 64 * 1024


@dataclass(frozen=True)
class Options:
    recordings: int = 50
    audio_seconds: float = 60.0
    sample_rate: int = 16_000
    repeats: int = 5
    seed: int = 2026

    @property
    def audio_bytes(self) -> int:
        """Bytes of one recording's WAV: 16-bit mono samples and the 44-byte header."""
        return int(self.audio_seconds * self.sample_rate) * 2 + 44


def recording(options: Options, number: int) -> bytes:
    """Call `number`'s WAV (16-bit mono PCM); noise drawn from the seed, so every call's audio differs and can be
    made again to check a copy byte for byte."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(options.sample_rate)
        frames = int(options.audio_seconds * options.sample_rate)
        out.writeframes(random.Random(options.seed * 10_000 + number).randbytes(frames * 2))
    return buffer.getvalue()


class Run:
    """The benchmark's database with what the services build on it at start: engine, sessions, blind index and
    a filesystem blob store."""

    def __init__(self, bench: Bench, database: str, blob_root: Path) -> None:
        self.bench = bench
        self.settings = Settings(
            _env_file=None, database_url=bench.url(database), service_name="export-bench"
        )
        self.engine = create_engine(self.settings)
        self.sessionmaker = create_sessionmaker(self.engine)
        self.blind_index = BlindIndex(self.settings.blind_index_key_bytes)
        self.blobs = FileBlobStore(blob_root)

    def keystore(self) -> KeyStore:
        """A key store of its own, as each service process has: nothing cached from another step's work."""
        return KeyStore(kek=self.settings.kek_bytes, kek_id=self.settings.key_encryption_key_id)

    async def close(self) -> None:
        await self.blobs.close()
        await self.engine.dispose()


class CallWriter:
    """Writes calls the way ingest does: intake (validation, keys, sealing, blind index), the record store, the
    recording upload."""

    def __init__(self, run: Run, options: Options) -> None:
        self.run = run
        self.options = options
        self.broker = KeptBroker()
        keystore = run.keystore()
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

    async def call(self, number: int) -> tuple[UUID, int]:
        """Ingest call `number` with its recording; its contact_ref and the WAV's size."""
        # A month before NOW, a call every ten minutes: all well within the recordings' retention.
        at = NOW - timedelta(days=30) + timedelta(minutes=10 * number)
        contact_id = f"pbx-export-{number:05d}"
        data: dict[str, dict[str, Any]] = {
            "call.started": {
                "direction": "inbound",
                "caller_number": f"+35840{2_000_000 + number:07d}",
                "service_number": "029 509 5000",
            },
            "call.answered": {"agent": {"id": f"agent-{number % 50}", "name": "Aino Agentti"}},
            "call.ended": {},
        }
        raws = []
        for event_type, offset in (*CALL_STEPS, ("call.ended", timedelta(minutes=4))):
            raw = example_event(event_type, event_id=str(uuid.uuid4()))
            raw.update(
                register=REGISTER,
                contact_id=contact_id,
                occurred_at=(at + offset).isoformat(),
                producer="bench-pbx",
                data=data[event_type],
            )
            raws.append(raw)
        outcomes = await self.intake.accept(raws)
        if [o.outcome for o in outcomes] != ["accepted"] * len(raws):
            raise RuntimeError(f"ingest did not accept call {number}: {outcomes}")
        async with self.run.sessionmaker() as session, session.begin():
            events = self.broker.take()
            await self.store.apply(session, events, fold_contacts(events))
        ref = self.intake.contact_ref(REGISTER, contact_id)
        async with self.run.sessionmaker() as session:
            contact = await session.get(Contact, ref)
        if contact is None:
            raise RuntimeError(f"the record store did not write call {number}")
        audio = recording(self.options, number)

        async def upload() -> AsyncIterator[bytes]:
            for start in range(0, len(audio), UPLOAD_PIECE):
                yield audio[start : start + UPLOAD_PIECE]

        artifact, created = await self.recordings.store(
            StoredContact.of(contact), upload(), content_type="audio/wav"
        )
        if not created or artifact.size_bytes != len(audio):
            raise RuntimeError(f"the recording of call {number} was not stored")
        return ref, len(audio)


async def write_loan(run: Run, refs: Sequence[UUID]) -> tuple[UUID, dict[UUID, int]]:
    """An approved loan with one selected item per contact; its id and each item's call number."""
    loan_id = uuid.uuid4()
    numbers: dict[UUID, int] = {}
    async with run.sessionmaker() as session, session.begin():
        session.add(
            Loan(
                loan_id=loan_id,
                institute_id=INSTITUTE,
                agreement_ref="PRH-TUT-2026/14",
                purpose="Assessing the quality of telephone customer service",
                study_ends_on=date(2027, 5, 31),
                institute_name="Puheentutkimuksen laboratorio",
                contact_person="Tutkimusjohtaja A. Tutkija",
                legal_basis="GDPR Art. 6(1)(e) and Art. 89",
                commitment="destroy",
                status="approved",
                created_by=uuid.uuid4(),
                approved_by=uuid.uuid4(),
                approved_at=NOW,
            )
        )
        await session.flush()
        for number, ref in enumerate(refs, start=1):
            item_id = uuid.uuid4()
            numbers[item_id] = number
            session.add(
                LoanItem(
                    item_id=item_id,
                    loan_id=loan_id,
                    contact_ref=ref,
                    artifact_class="recording",
                    register=REGISTER,
                    status="selected",
                )
            )
    return loan_id, numbers


async def build_package(run: Run, loan_id: UUID) -> tuple[float, BuiltPackage, bytes]:
    """Seconds of building the loan's package as the route does (the loan locked, its selected items read, a
    fresh key, the package built and stored); the package and its key."""
    started = time.perf_counter()
    async with run.sessionmaker() as session, session.begin():
        loan = await session.get(Loan, loan_id, with_for_update=True)
        if loan is None:
            raise RuntimeError("the loan is missing")
        items = (
            await session.scalars(
                select(LoanItem)
                .where(LoanItem.loan_id == loan_id, LoanItem.status == "selected")
                .order_by(LoanItem.item_id)
                .with_for_update()
            )
        ).all()
        package_key = generate_data_key()
        built = await build_loan_package(
            session,
            # The export service's key store: no data key cached from ingest's uploads.
            keystore=run.keystore(),
            blobs=run.blobs,
            loan=loan,
            items=items,
            package_key=package_key,
            blob_key=f"loans/{loan_id}/{uuid.uuid4()}.zip.enc",
            created_at=NOW,
        )
    return time.perf_counter() - started, built, package_key


def plain_copy(sources: Sequence[Path], target: Path) -> tuple[float, int]:
    """Seconds and bytes of copying `sources` into the empty directory `target`, each copy fsynced and then the
    directory: as durable as the blob store's write of the package."""
    started = time.perf_counter()
    copied = 0
    for number, source in enumerate(sources):
        destination = target / f"{number}.bin"
        shutil.copyfile(source, destination)
        descriptor = os.open(destination, os.O_RDONLY)
        try:
            os.fsync(descriptor)
            copied += os.fstat(descriptor).st_size
        finally:
            os.close(descriptor)
    directory = os.open(target, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return time.perf_counter() - started, copied


@dataclass
class Figures:
    recordings: int
    audio_bytes: int = 0
    load_seconds: float = 0.0
    package: list[float] = field(default_factory=list)
    copy: list[float] = field(default_factory=list)
    package_bytes: int = 0
    """Ciphertext of one package, as stored."""
    copy_bytes: int = 0
    """The recordings' encrypted blobs, as copied."""
    order: list[str] = field(default_factory=list)
    """Which went first in each counted turn."""
    verified: int = 0
    """Recordings in the first package that match the manifest and the uploaded WAV."""
    mismatches: list[str] = field(default_factory=list)

    @property
    def package_mb_s(self) -> float:
        return self.package_bytes / MB / statistics.median(self.package)

    @property
    def copy_mb_s(self) -> float:
        return self.copy_bytes / MB / statistics.median(self.copy)

    @property
    def ratio(self) -> float:
        return self.package_mb_s / self.copy_mb_s


async def measure(admin_url: str, workdir: Path, options: Options, *, log: Any = print) -> Figures:
    """Every measurement, in a database of its own on the server at `admin_url` (dropped at the end); the blob
    store and the copies under `workdir`."""
    bench = Bench(admin_url, workdir, batch_size=0, run=uuid.uuid4().hex[:8])
    try:
        template = await bench.migrated_template()
        database = await bench.create_database("main", template)
        run = Run(bench, database, workdir / "blobs")
        try:
            return await _measure(run, options, workdir, log)
        finally:
            await run.close()
    finally:
        await bench.drop_all()


async def _measure(run: Run, options: Options, workdir: Path, log: Any) -> Figures:
    figures = Figures(recordings=options.recordings)
    log(f"  ingesting {options.recordings} calls with their recordings ...")
    started = time.perf_counter()
    writer = CallWriter(run, options)
    refs = []
    for number in range(1, options.recordings + 1):
        ref, size = await writer.call(number)
        refs.append(ref)
        figures.audio_bytes += size
    loan_id, numbers = await write_loan(run, refs)
    figures.load_seconds = time.perf_counter() - started
    async with run.sessionmaker() as session:
        blob_keys = (
            await session.scalars(
                select(Artifact.blob_key).where(
                    Artifact.contact_ref.in_(refs), Artifact.artifact_class == "recording"
                )
            )
        ).all()
    sources = [run.blobs.root / str(key) for key in blob_keys]

    log(f"  package and plain copy, {options.repeats} times each in turns after one not counted ...")
    copies = workdir / "copies"
    for attempt in range(options.repeats + 1):
        package_first = attempt % 2 == 0
        target = Path(tempfile.mkdtemp(dir=workdir, prefix="copy-"))
        try:
            if package_first:
                seconds, built, key = await build_package(run, loan_id)
                copy_seconds, figures.copy_bytes = plain_copy(sources, target)
            else:
                copy_seconds, figures.copy_bytes = plain_copy(sources, target)
                seconds, built, key = await build_package(run, loan_id)
        finally:
            shutil.rmtree(target)
        figures.package_bytes = built.size
        if attempt == 0:  # warms the caches; checked, not counted
            await _check(run, options, built, key, loan_id, numbers, copies, figures)
        else:
            figures.package.append(seconds)
            figures.copy.append(copy_seconds)
            figures.order.append("package" if package_first else "copy")
        await run.blobs.delete(built.blob_key)
    return figures


async def _check(
    run: Run,
    options: Options,
    built: BuiltPackage,
    key: bytes,
    loan_id: UUID,
    numbers: dict[UUID, int],
    out: Path,
    figures: Figures,
) -> None:
    """Open the package as the institute does and compare every recording with the uploaded WAV."""
    report = await unpack_package(
        run.blobs.open_stream(built.blob_key), package_key=key, loan_id=loan_id, out_dir=out
    )
    figures.mismatches = list(report.mismatches)
    if report.ciphertext_sha256 != built.sha256:
        figures.mismatches.append("the package's SHA-256 differs from the one taken while writing it")
    for item_id, number in numbers.items():
        if (out / recording_file(item_id)).read_bytes() == recording(options, number):
            figures.verified += 1
        else:
            figures.mismatches.append(f"{recording_file(item_id)}: not the uploaded WAV")
    shutil.rmtree(out)


def report(figures: Figures, options: Options) -> list[str]:
    package, copy = statistics.median(figures.package), statistics.median(figures.copy)
    met = "met" if figures.ratio >= 0.5 else "**not met**"
    checked = (
        f"{figures.verified} of {figures.recordings} recordings match the manifest and the upload"
        if not figures.mismatches
        else f"{len(figures.mismatches)} MISMATCHES: " + "; ".join(figures.mismatches[:3])
    )
    return [
        "| measure | result | target |",
        "|---|---|---|",
        f"| ingest of {figures.recordings} calls with {options.audio_seconds:g} s recordings "
        f"({options.sample_rate / 1000:g} kHz 16-bit mono, {figures.audio_bytes / MB:.1f} MB of audio) and the "
        f"loan | {figures.load_seconds:.1f} s | |",
        f"| package of {figures.recordings} recordings (decrypt, verify, zip, encrypt, SHA-256, write with fsync), "
        f"median of {len(figures.package)} | {package:.3f} s, {figures.package_bytes / MB:.1f} MB "
        f"({figures.package_mb_s:.1f} MB/s) | |",
        f"| plain copy of the same encrypted blobs with fsync, same run, median of {len(figures.copy)} | "
        f"{copy:.3f} s, {figures.copy_bytes / MB:.1f} MB ({figures.copy_mb_s:.1f} MB/s) | |",
        f"| ratio package / copy MB/s (higher is better) | {figures.ratio:.2f} | >= 0.5, {met} |",
        f"| first package opened with its key | {checked} | all |",
    ]


async def main() -> None:

    defaults = Options()
    parser = argparse.ArgumentParser(
        prog="python -m bench.export", description=__doc__.split("\n\n")[0].replace("\n", " ")
    )
    parser.add_argument("--recordings", type=int, default=defaults.recordings, help="items in the loan")
    parser.add_argument("--audio-seconds", type=float, default=defaults.audio_seconds, help="per recording")
    parser.add_argument("--sample-rate", type=int, default=defaults.sample_rate, help="Hz, 16-bit mono")
    parser.add_argument("--repeats", type=int, default=defaults.repeats, help="counted runs of each")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    args = parser.parse_args()
    options = Options(
        recordings=args.recordings,
        audio_seconds=args.audio_seconds,
        sample_rate=args.sample_rate,
        repeats=args.repeats,
        seed=args.seed,
    )
    configure_logging(service="bench", level="WARNING", json=False)
    with scratch_postgres("export") as (url, workdir):
        print(
            f"Sailo export benchmark: a loan of {options.recordings} recordings of {options.audio_seconds:g} s "
            f"({options.audio_bytes / MB:.2f} MB each), {options.repeats} runs each; embedded PostgreSQL, no broker"
        )
        figures = await measure(url, workdir, options)
        print("\n".join(report(figures, options)))


if __name__ == "__main__":
    asyncio.run(main())
