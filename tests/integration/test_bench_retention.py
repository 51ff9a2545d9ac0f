"""The retention benchmark at a tiny scale, so bench/retention.py keeps working as the schema and the sweeper
change. The full-size run is `make bench-retention`, never part of the test suite."""

from __future__ import annotations

import uuid
from pathlib import Path

import asyncpg
import pytest

from bench.retention import NOW, Bench, Options, load, measure, population, report
from tests.conftest import Infrastructure, plain_dsn

pytestmark = pytest.mark.integration


def test_the_population_has_the_live_and_due_counts_asked_for() -> None:
    contacts = list(population(1_000, 100))
    due = [at for contact in contacts for _, at in contact.due if at <= NOW]
    assert sum(len(contact.due) for contact in contacts) == 1_000
    assert len(due) == 100


async def test_the_benchmark_runs_end_to_end_at_a_tiny_scale(
    infrastructure: Infrastructure, tmp_path: Path
) -> None:
    options = Options(scale=0.0005, empty_repeats=2, lag_rate=40, lag_seconds=1, interval=0.2)
    figures = await measure(infrastructure.database_url, tmp_path, options, log=lambda _: None)

    assert (figures.loaded.artifacts, len(figures.loaded.due)) == (options.live, options.due)
    assert figures.sweep_rate > 0 and figures.bare_rate > 0
    assert set(figures.empty_ms) == {100, options.live}
    assert figures.lag is not None
    assert (figures.lag.items, figures.lag.missed) == (40, 0)
    assert figures.lag.p99 < options.interval + 5
    assert len(report(figures)) == 9


async def test_the_loader_writes_what_the_sweeper_reads(
    infrastructure: Infrastructure, tmp_path: Path
) -> None:
    bench = Bench(infrastructure.database_url, tmp_path, batch_size=50, run=uuid.uuid4().hex[:8])
    try:
        template = await bench.migrated_template()
        database = await bench.create_database("rows", template)
        loaded = await load(bench.dsn(database), population(200, 20), events_per_artifact=3, sealed_bytes=100)
        connection = await asyncpg.connect(plain_dsn(bench.url(database)))
        try:
            counts = {
                table: await connection.fetchval(f"SELECT count(*) FROM {table}")
                for table in (
                    "records.contacts",
                    "keys.data_keys",
                    "records.artifacts",
                    "records.contact_events",
                    "retention.contact_facts",
                    "retention.schedule",
                )
            }
            sizes = await connection.fetchval("SELECT min(length(sealed)) FROM records.contact_events")
            due = await connection.fetchval(
                "SELECT count(*) FROM retention.schedule WHERE state = 'scheduled' AND due_at <= $1", NOW
            )
        finally:
            await connection.close()
        assert counts == {
            "records.contacts": loaded.contacts,
            "keys.data_keys": 200,
            "records.artifacts": 200,
            "records.contact_events": 600,
            "retention.contact_facts": loaded.contacts,
            "retention.schedule": 200,
        }
        assert sizes == 100
        assert due == len(loaded.due) == 20
        swept = await bench.sweep_due(database, expected=20)
        assert swept > 0
    finally:
        await bench.drop_all()
