"""The export benchmark at a tiny size, so bench/export.py keeps working as the package, ingest and the schema
change. The full-size run is `make bench-export`, never part of the test suite; nothing here depends on timing."""

from __future__ import annotations

import io
import wave
from pathlib import Path

import pytest

from bench.export import Options, measure, recording, report
from tests.conftest import Infrastructure

pytestmark = pytest.mark.integration


def test_the_recordings_are_wav_files_of_the_length_and_rate_asked_for() -> None:
    options = Options(audio_seconds=1.5, sample_rate=16_000)
    audio = recording(options, 1)
    with wave.open(io.BytesIO(audio)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 16_000)
        assert wav.getnframes() == 24_000
    assert len(audio) == options.audio_bytes
    assert recording(options, 1) == audio != recording(options, 2)


async def test_the_benchmark_runs_end_to_end_at_a_tiny_size(
    infrastructure: Infrastructure, tmp_path: Path
) -> None:
    options = Options(recordings=4, audio_seconds=1.0, sample_rate=8000, repeats=3)
    figures = await measure(infrastructure.database_url, tmp_path, options, log=lambda _: None)

    assert figures.mismatches == [] and figures.verified == 4
    assert len(figures.package) == len(figures.copy) == 3
    assert figures.order == ["copy", "package", "copy"]  # turns alternate which goes first
    assert figures.audio_bytes == 4 * options.audio_bytes
    # The copy is of the recordings' encrypted blobs, the package their audio plus a manifest and ZIP headers,
    # encrypted: both a little larger than the audio, by less than a tenth.
    for written in (figures.copy_bytes, figures.package_bytes):
        assert figures.audio_bytes < written < figures.audio_bytes * 1.1
    assert figures.package_mb_s > 0 and figures.copy_mb_s > 0
    assert figures.ratio == pytest.approx(figures.package_mb_s / figures.copy_mb_s)
    # Every package was deleted once measured (the first once checked); nothing of the copies is left.
    assert not any((tmp_path / "blobs" / "loans").rglob("*.zip.enc"))
    assert not list(tmp_path.glob("copy-*")) and not (tmp_path / "copies").exists()

    lines = report(figures, options)
    assert len(lines) == 7
    assert "4 recordings" in lines[3] and "MB/s" in lines[3] and "MB/s" in lines[4]
    assert f"| {figures.ratio:.2f} | >= 0.5" in lines[5]
    assert "4 of 4 recordings match" in lines[6]
