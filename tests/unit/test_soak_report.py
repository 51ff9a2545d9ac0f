"""The soak's verdict (`make soak`, tests.faults.harness.SoakReport): flat memory, a bounded deletion lag and a
record store that keeps up pass; a process that keeps growing, a sweeper that falls behind or a lag that keeps
rising each fail, named in the report's RESULT line."""

from __future__ import annotations

import io

from tests.faults.harness import SoakReport, SoakSample
from tests.faults.verify import Verdict

MIB = 2**20
RATE = 300.0


def samples(
    *,
    memory: dict[str, tuple[int, int]] | None = None,
    deletion_lag: float = 1.5,
    lag: tuple[int, int] = (40, 40),
) -> list[SoakSample]:
    """A 30-minute soak sampled every 10 s; memory (MiB) and the record store's lag move from their first to
    their last value in a straight line."""
    memory = memory or {"ingest-http-1": (120, 122), "retention-1": (90, 91)}
    count = 180
    out = []
    for n in range(count):
        share = n / (count - 1)
        out.append(
            SoakSample(
                at=10.0 * n,
                rss={name: int((a + (b - a) * share) * MIB) for name, (a, b) in memory.items()},
                deletion_lag=deletion_lag,
                consumer_lag=int(lag[0] + (lag[1] - lag[0]) * share),
            )
        )
    return out


def report(sampled: list[SoakSample]) -> SoakReport:
    return SoakReport(30, RATE, sampled, Verdict(acknowledged=540_000, stored=540_000), settled=True)


def result_line(soak: SoakReport) -> str:
    out = io.StringIO()
    soak.print(out)
    return next(line for line in out.getvalue().splitlines() if line.startswith("RESULT"))


def test_a_steady_run_passes() -> None:
    soak = report(samples())
    assert soak.failures() == []
    assert result_line(soak) == "RESULT: PASS"


def test_a_process_that_keeps_growing_fails_by_name() -> None:
    soak = report(samples(memory={"ingest-http-1": (120, 122), "export-1": (100, 400)}))
    [problem] = soak.failures()
    assert "export-1" in problem and "ingest-http-1" not in problem
    assert "export-1" in result_line(soak)


def test_a_few_mib_of_allocator_noise_is_flat() -> None:
    # +40 % of a small process, but only 8 MiB: not a leak.
    assert report(samples(memory={"dsr-1": (20, 28)})).failures() == []


def test_a_sweeper_that_falls_behind_fails() -> None:
    [problem] = report(samples(deletion_lag=300.0)).failures()
    assert "deletion lag" in problem


def test_a_record_store_lag_that_keeps_rising_fails_and_a_constant_one_passes() -> None:
    assert report(samples(lag=(2_000, 2_000))).failures() == []
    [problem] = report(samples(lag=(100, 50_000))).failures()
    assert "record store" in problem


def test_what_is_lost_or_done_twice_still_fails() -> None:
    soak = SoakReport(30, RATE, samples(), Verdict(acknowledged=10, lost=["e1"]), settled=False)
    assert len(soak.failures()) == 2
