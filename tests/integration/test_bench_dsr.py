"""The DSR benchmark at a tiny scale, so bench/dsr.py keeps working as the schema, the search and the package
change. The full-size run is `make bench-dsr`, never part of the test suite; nothing here depends on
timing."""

from __future__ import annotations

import io
import random
import uuid
import wave
from pathlib import Path

import asyncpg
import orjson
import pytest

from bench.dsr import (
    MAX_CALLS,
    Options,
    Population,
    Run,
    caller_number,
    load,
    measure,
    package_files,
    register_requests,
    report,
    subject_audio,
    timed_search,
)
from bench.retention import REGISTER, Bench
from services.dsr.letters import PackageContents
from shared.storage.blobstore import create_blob_store
from tests.conftest import Infrastructure, plain_dsn

pytestmark = pytest.mark.integration


def test_the_population_has_the_contacts_asked_for() -> None:
    population = Population.draw(5_000, random.Random(7))
    assert len(population.caller_of) == sum(population.calls) == 5_000
    assert max(population.calls) <= MAX_CALLS
    assert sorted(population.caller_of) == [c for c, n in enumerate(population.calls) for _ in range(n)]
    # Most callers call once or twice, some many times.
    assert 1.5 < 5_000 / len(population.calls) < 2.5
    assert max(population.calls) >= 5


def test_the_recordings_are_wav_files_of_the_length_asked_for() -> None:
    options = Options(audio_seconds=2.5)
    audio = subject_audio(options, 1)
    with wave.open(io.BytesIO(audio)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 8000)
        assert wav.getnframes() == 20_000
    assert subject_audio(options, 1) == audio != subject_audio(options, 2)


async def test_the_benchmark_runs_end_to_end_at_a_tiny_scale(
    infrastructure: Infrastructure, tmp_path: Path
) -> None:
    options = Options(scale=0.003, contacts=4, audio_seconds=1.5, lookups=30, package_repeats=2)
    figures = await measure(infrastructure.database_url, tmp_path, options, log=lambda _: None)

    subject = figures.subject
    assert subject is not None and len(subject.refs) == 4
    # The subject's search finds exactly their calls, among 3,000 contacts of 1,500-odd callers.
    assert figures.contacts == 3_000
    assert sorted(figures.found) == sorted(subject.refs)
    assert len(figures.search) == len(figures.raw_lookup) == 30
    assert figures.absent == 3
    assert len(figures.package) == len(figures.raw_read) == 2
    assert figures.raw_bytes > subject.audio_bytes == sum(len(subject_audio(options, n)) for n in range(1, 5))

    info = figures.first_package
    assert info is not None
    assert info.contents == PackageContents(contacts=4, recordings=4, messages=0, transcripts=0)
    blobs = create_blob_store(f"file://{tmp_path / 'blobs'}")
    try:
        files = await package_files(blobs, info, figures.first_package_key)
    finally:
        await blobs.close()
    recordings = [f"recordings/{n}-{REGISTER}.wav" for n in range(1, 5)]
    assert list(files) == info.files == ["cover-letter.txt", "contacts.json", "contacts.csv", *recordings]
    for number, name in enumerate(recordings, start=1):
        assert files[name] == subject_audio(options, number)
    contacts = orjson.loads(files["contacts.json"])
    assert [c["number"] for c in contacts] == [1, 2, 3, 4]
    for contact in contacts:
        assert [e["type"] for e in contact["events"]] == ["call.started", "call.answered", "call.ended"]
        assert contact["events"][0]["data"]["caller_number"] == "+358451234567"
        assert {"role": "customer", "details": {"phone": "+358451234567"}} in contact["parties"]
        assert contact["recording"]["size_bytes"] == len(subject_audio(options, contact["number"]))

    assert len(report(figures, options)) == 10


async def test_the_loader_writes_what_the_search_finds(
    infrastructure: Infrastructure, tmp_path: Path
) -> None:
    bench = Bench(infrastructure.database_url, tmp_path, batch_size=0, run=uuid.uuid4().hex[:8])
    try:
        template = await bench.migrated_template()
        database = await bench.create_database("rows", template)
        run = Run(bench, database, tmp_path / "blobs")
        try:
            population = Population.draw(600, random.Random(3))
            seconds = await load(
                run.dsn, population, run.blind_index, run.settings.key_encryption_key_id, chunk=250
            )
            assert seconds > 0
            connection = await asyncpg.connect(plain_dsn(bench.url(database)))
            try:
                counts = {
                    table: await connection.fetchval(f"SELECT count(*) FROM {table}")
                    for table in (
                        "records.contacts",
                        "keys.data_keys",
                        "records.artifacts",
                        "records.contact_events",
                        "records.parties",
                        "records.subject_index",
                    )
                }
            finally:
                await connection.close()
            assert counts == {
                "records.contacts": 600,
                "keys.data_keys": 600,
                "records.artifacts": 600,
                "records.contact_events": 1_800,
                "records.parties": 1_200,
                "records.subject_index": 1_200,
            }
            # The digests are the ones ingest computes: the DSR search finds every call of a caller.
            busiest = max(range(len(population.calls)), key=population.calls.__getitem__)
            (lookup,) = await register_requests(run, [(caller_number(busiest), population.calls[busiest])])
            _, found = await timed_search(run, run.keystore(), lookup.request_id)
            assert len(found) == population.calls[busiest] > 1
        finally:
            await run.close()
    finally:
        await bench.drop_all()
