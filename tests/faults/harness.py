"""Runs of the whole system under faults, with more instances, and for a long time; each ends in a report.

- `fault_run`: a fault-free stream first (the baseline), then the same stream under faults: kill -9 of every
  kind of process at random moments and at forced crash points, database sessions terminated, PostgreSQL
  restarted, the broker unreachable for a while. Then the ledger is held against the database and the topics.
- `scale_run`: N instances of every service, no faults; throughput and the same checks.
- `soak_run`: a steady rate for a long time; memory of each process, deletion lag and consumer lag sampled.

Everything runs on loopback, on ports chosen free, in a scratch directory; every wait has a bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import asyncpg
import httpx

from tests.faults.cluster import KINDS, Cluster, Instance
from tests.faults.load import EventStream, Ledger, Sender, Window
from tests.faults.verify import RECORD_STORE_GROUP, Verdict, settled, verify

TOPIC_PREFIX = "sailo."
READY_TIMEOUT = 120.0
FORCED_WAIT = 30.0
"""How long an armed process is given to reach its crash point before the harness moves on."""


@dataclass
class Plan:
    events: int = 100_000
    crashes: int = 24
    """kill -9 at random moments plus deaths at forced crash points, at least this many in all."""
    outage_seconds: float = 8.0
    connection_terminations: int = 2
    postgres_restarts: int = 1
    instances: int = 1
    baseline: bool = True
    rate: float | None = None
    """Events/s offered; None sends as fast as ingest takes them."""
    seed: int = 0


@dataclass
class Recovery:
    fault: str
    seconds: float


@dataclass
class FaultReport:
    plan: Plan
    verdict: Verdict
    baseline_rate: float | None
    fault_rate: float
    crashes: Counter[str] = field(default_factory=Counter)
    """By cause and place: 'kill -9 retention', 'forced retention.after_shred', ..."""
    other_faults: Counter[str] = field(default_factory=Counter)
    recoveries: list[Recovery] = field(default_factory=list)
    answers: Counter[str] = field(default_factory=Counter)
    accepted_while_broker_away: int = 0
    unavailable_while_broker_away: int = 0
    settled: bool = True
    outstanding: str = ""
    killed_kinds: set[str] = field(default_factory=set)

    @property
    def crash_count(self) -> int:
        return sum(self.crashes.values())

    def failures(self) -> list[str]:
        """What makes the run fail, in words; empty when it passed."""
        v = self.verdict
        problems = []
        if not self.settled:
            problems.append(f"the system did not settle: {self.outstanding}")
        if v.lost:
            problems.append(f"{len(v.lost)} acknowledged events lost")
        if v.duplicated_effects:
            problems.append(f"{v.duplicated_effects} duplicated effects")
        if v.dead_letters:
            problems.append(f"{sum(v.dead_letters.values())} events dead-lettered")
        if v.live_rows_missing:
            problems.append(f"{v.live_rows_missing} applied events without their record")
        if v.expired_rows_left or v.expired_items_pending:
            problems.append(
                f"expired contacts not deleted: {v.expired_rows_left} events left, "
                f"{v.expired_items_pending} schedule items not done"
            )
        if self.accepted_while_broker_away:
            problems.append(f"{self.accepted_while_broker_away} events accepted while the broker was away")
        if self.plan.outage_seconds and not self.unavailable_while_broker_away:
            problems.append("no 503 seen while the broker was away: the outage was not exercised")
        if self.crash_count < self.plan.crashes:
            problems.append(f"only {self.crash_count} crashes of {self.plan.crashes} planned")
        missing = {k.name for k in KINDS} - self.killed_kinds
        if self.plan.crashes and missing:
            problems.append(f"never crashed: {', '.join(sorted(missing))}")
        if any(k.startswith("HTTP 5") and k != "HTTP 503" for k in self.answers):
            problems.append("ingest answered a 5xx other than 503")
        return problems

    def print(self, out: TextIO) -> None:
        v = self.verdict
        p = self.plan
        w = 46
        print(f"Sailo fault run: {p.instances} instance(s) of each service, seed {p.seed}", file=out)
        print(f"  {'events acknowledged by ingest (202)':<{w}} {v.acknowledged:>10,}", file=out)
        print(f"  {'stored by the record store':<{w}} {v.stored:>10,}", file=out)
        print(f"  {'expired on arrival, already shredded':<{w}} {v.shredded_on_arrival:>10,}", file=out)
        print(f"  {'lost':<{w}} {len(v.lost):>10,}", file=out)
        print(f"  {'duplicated effects':<{w}} {v.duplicated_effects:>10,}", file=out)
        for name, count in sorted(v.duplicated.items()):
            print(f"    {name:<{w - 2}} {count:>10,}", file=out)
        print(f"  {'redeliveries absorbed':<{w}} {sum(v.redeliveries.values()):>10,}", file=out)
        for name, count in sorted(v.redeliveries.items()):
            print(f"    {name:<{w - 2}} {count:>10,}", file=out)
        print(
            f"  {'dead-lettered (every event sent is valid)':<{w}} {sum(v.dead_letters.values()):>10,}",
            file=out,
        )
        for name, count in sorted(v.dead_letters.items()):
            print(f"    {name:<{w - 2}} {count:>10,}", file=out)
        print(f"  {'expired contacts: certificates of deletion':<{w}} {v.certificates:>10,}", file=out)
        print(f"  {'  deletions announced (one event id each)':<{w}} {v.deletion_events:>10,}", file=out)
        print(f"  {'crashes (kill -9 and forced crash points)':<{w}} {self.crash_count:>10,}", file=out)
        for name, count in sorted(self.crashes.items()):
            print(f"    {name:<{w - 2}} {count:>10,}", file=out)
        for name, count in sorted(self.other_faults.items()):
            print(f"  {name:<{w}} {count:>10,}", file=out)
        if p.outage_seconds:
            print(
                f"  {'while the broker was away: 503 + Retry-After':<{w}} {self.unavailable_while_broker_away:>10,}",
                file=out,
            )
            print(
                f"  {'while the broker was away: 202 accepted':<{w}} {self.accepted_while_broker_away:>10,}",
                file=out,
            )
        if self.recoveries:
            longest = max(self.recoveries, key=lambda r: r.seconds)
            print(f"  {'longest recovery':<{w}} {longest.seconds:>9.1f}s  ({longest.fault})", file=out)
            median = statistics.median(r.seconds for r in self.recoveries)
            print(f"  {'median recovery':<{w}} {median:>9.1f}s", file=out)
        if self.baseline_rate:
            print(f"  {'throughput, fault-free':<{w}} {self.baseline_rate:>10,.0f} events/s", file=out)
        print(f"  {'throughput under faults':<{w}} {self.fault_rate:>10,.0f} events/s", file=out)
        if self.baseline_rate:
            print(
                f"  {'ratio under faults / fault-free':<{w}} {self.fault_rate / self.baseline_rate:>10.2f}",
                file=out,
            )
        print(f"  ingest's answers: {dict(sorted(self.answers.items()))}", file=out)
        problems = self.failures()
        print("RESULT: " + ("PASS" if not problems else "FAIL - " + "; ".join(problems)), file=out)


class Supervisor:
    """Restarts every process that dies and measures how long it takes to be ready again."""

    def __init__(self, cluster: Cluster, report: FaultReport) -> None:
        self.cluster = cluster
        self.report = report
        self._stop = asyncio.Event()
        self._waits: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        while not self._stop.is_set():
            for death in self.cluster.reap():
                kind = death.instance.rsplit("-", 1)[0]
                if death.cause == "forced crash point":
                    self.report.crashes[f"forced {death.point}"] += 1
                    self.report.killed_kinds.add(kind)
                elif death.cause != "kill -9":
                    self.report.crashes[f"died on its own ({death.cause}) {kind}"] += 1
                instance = next(i for i in self.cluster.instances if i.name == death.instance)
                task = asyncio.create_task(
                    self._measure(instance, f"{death.cause} {death.point or kind}", death.at)
                )
                self._waits.add(task)
                task.add_done_callback(self._waits.discard)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), 0.2)

    async def _measure(self, instance: Instance, fault: str, since: float) -> None:
        if await self.cluster.wait_ready_async(instance, READY_TIMEOUT):
            self.report.recoveries.append(Recovery(fault, time.monotonic() - since))

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._waits, return_exceptions=True)


class Chaos:
    """The planned faults, one after another with a random pause between, each waited out until the system is
    ready again; `done` once all have happened."""

    def __init__(self, cluster: Cluster, plan: Plan, report: FaultReport, outages: list[Window]) -> None:
        self.cluster = cluster
        self.plan = plan
        self.report = report
        self.outages = outages
        self.rng = random.Random(plan.seed)
        self.done = False

    async def run(self) -> None:
        try:
            # Every kind of process first, each at one of its points; then the remaining points in random order.
            firsts = [(kind.name, self.rng.choice(kind.forced_points)) for kind in KINDS]
            rest = [(kind.name, point) for kind in KINDS for point in kind.forced_points]
            rest = [pair for pair in rest if pair not in firsts]
            self.rng.shuffle(firsts)
            self.rng.shuffle(rest)
            points = firsts + rest
            actions: list[Callable[[], Awaitable[None]]] = []
            # Each cycle kills a process at a random moment, then restarts it armed to die at a forced point.
            for number in range(max(self.plan.crashes, len(KINDS))):
                kind, point = points[number % len(points)]
                actions.append(lambda kind=kind, point=point: self._kill_and_arm(kind, point))
            others: list[Callable[[], Awaitable[None]]] = []
            others += [self._terminate_connections] * self.plan.connection_terminations
            others += [self._restart_postgres] * self.plan.postgres_restarts
            if self.plan.outage_seconds:
                others.append(self._broker_outage)
            for other in others:  # spread among the kills, never first
                actions.insert(self.rng.randint(1, len(actions)), other)
            for action in actions:
                every_kind = self.report.killed_kinds >= {kind.name for kind in KINDS}
                if action in others or self.report.crash_count < self.plan.crashes or not every_kind:
                    await action()
                await asyncio.sleep(self.rng.uniform(0.5, 2.0))
        finally:
            self.done = True

    async def _kill_and_arm(self, kind: str, point: str) -> None:
        instance = self.rng.choice(self.cluster.of_kind(kind))
        killed_at = time.monotonic()
        self.cluster.kill(instance)
        self.report.crashes[f"kill -9 {kind}"] += 1
        self.report.killed_kinds.add(kind)
        self.cluster.spawn(instance, armed=f"{point}:{self.rng.randint(1, 3)}")
        if await self.cluster.wait_ready_async(instance, READY_TIMEOUT):
            self.report.recoveries.append(Recovery(f"kill -9 {kind}", time.monotonic() - killed_at))
        deadline = time.monotonic() + FORCED_WAIT
        while instance.alive() and instance.armed and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        if instance.alive() and instance.armed:
            self.report.other_faults[f"forced point not reached in {FORCED_WAIT:.0f}s: {point}"] += 1

    async def _terminate_connections(self) -> None:
        began = time.monotonic()
        ended = await self.cluster.terminate_connections()
        self.report.other_faults["database sessions terminated (rounds)"] += 1
        self.report.other_faults["  sessions ended"] += ended
        await self._all_ready("database sessions terminated", began)

    async def _restart_postgres(self) -> None:
        began = time.monotonic()
        await asyncio.to_thread(self.cluster.restart_postgres)
        self.report.other_faults["PostgreSQL restarts"] += 1
        await self._all_ready("PostgreSQL restart", began)

    async def _broker_outage(self) -> None:
        window = Window(time.monotonic())
        self.outages.append(window)
        self.cluster.pause_broker()
        await asyncio.sleep(self.plan.outage_seconds)
        self.cluster.resume_broker()
        window.end = time.monotonic()
        self.report.other_faults[f"broker unreachable ({self.plan.outage_seconds:.0f}s each)"] += 1
        await self._all_ready("broker unreachable", window.end)

    async def _all_ready(self, fault: str, since: float) -> None:
        for instance in self.cluster.instances:
            await self.cluster.wait_ready_async(instance, READY_TIMEOUT)
        self.report.recoveries.append(Recovery(fault, time.monotonic() - since))


async def _stream(
    cluster: Cluster,
    ledger: Ledger,
    *,
    enough: Callable[[], bool],
    outages: list[Window] | None = None,
    rate: float | None = None,
    run: str,
) -> float:
    """Sends until `enough`, waits until everything acknowledged is applied; events/s from first send on."""
    sender = Sender(cluster, EventStream(run), ledger, outages=outages, rate=rate)
    await sender.run(enough)
    outstanding = await settled(cluster.dsn, ledger)
    if outstanding is not None:
        raise Unsettled(outstanding)
    return len(ledger.acknowledged) / (time.monotonic() - ledger.first_sent)


class Unsettled(Exception):
    """The system did not apply everything it acknowledged within the harness's bound."""


async def fault_run(plan: Plan, out: TextIO, workdir: Path | None = None) -> FaultReport:
    with _workdir(workdir) as directory:
        cluster = Cluster(directory, instances=plan.instances)
        await asyncio.to_thread(cluster.start)
        try:
            return await _fault_run(cluster, plan, out)
        finally:
            await asyncio.to_thread(cluster.stop)


async def _fault_run(cluster: Cluster, plan: Plan, out: TextIO) -> FaultReport:
    baseline_rate = None
    everything = Ledger()
    if plan.baseline:
        baseline = Ledger()
        print(f"fault-free stream of {plan.events:,} events ...", file=out, flush=True)
        baseline_rate = await _stream(
            cluster,
            baseline,
            enough=lambda: len(baseline.sent) >= plan.events,
            rate=plan.rate,
            run=f"{plan.seed}-base",
        )
        _merge(everything, baseline)
    ledger = Ledger()
    outages: list[Window] = []
    report = FaultReport(plan, Verdict(), baseline_rate, 0.0)
    chaos = Chaos(cluster, plan, report, outages)
    supervisor = Supervisor(cluster, report)
    scraper = RedeliveryScraper(cluster)
    print(f"the same stream under faults (at least {plan.crashes} crashes) ...", file=out, flush=True)
    tasks = [
        asyncio.create_task(chaos.run(), name="chaos"),
        asyncio.create_task(supervisor.run(), name="supervisor"),
        asyncio.create_task(scraper.run(), name="metrics"),
    ]
    try:
        report.fault_rate = await _stream(
            cluster,
            ledger,
            enough=lambda: chaos.done and len(ledger.sent) >= plan.events,
            outages=outages,
            rate=plan.rate,
            run=f"{plan.seed}-faults",
        )
    except Unsettled as exc:
        report.settled = False
        report.outstanding = str(exc)
    finally:
        chaos.done = True
        await supervisor.stop()
        scraper.stop()
        await asyncio.gather(*tasks, return_exceptions=True)
    _merge(everything, ledger)
    report.verdict = await verify(cluster.dsn, cluster.bootstrap_servers, TOPIC_PREFIX, everything)
    if report.verdict.lost:
        lost_file = cluster.workdir / "lost-events.txt"
        lost_file.write_text("\n".join(report.verdict.lost) + "\n")
        print(f"the ids of the lost events are in {lost_file}", file=out)
    report.verdict.redeliveries["answered 'duplicate' to a resend"] = ledger.answers["duplicate"]
    report.verdict.redeliveries["seen again by a consumer after a crash (at least)"] = scraper.total()
    report.answers = ledger.answers
    report.accepted_while_broker_away = len(ledger.accepted_while_broker_away)
    report.unavailable_while_broker_away = ledger.unavailable_while_broker_away
    return report


def _merge(into: Ledger, other: Ledger) -> None:
    into.sent |= other.sent
    into.acknowledged |= other.acknowledged
    into.expired |= other.expired
    into.expired_contacts |= other.expired_contacts


class RedeliveryScraper:
    """Reads each consumer process's count of repeats it recognised (sailo_consumer_messages_total, outcome
    duplicate) once a second. A process killed between two reads takes its last few with it, so the sum is a
    lower bound."""

    _LINE = re.compile(r'^sailo_consumer_messages_total\{[^}]*outcome="duplicate"[^}]*\} ([0-9.e+]+)$', re.M)

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self._seen: dict[tuple[str, float], float] = {}
        self._stop = asyncio.Event()

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=1.0) as client:
            while not self._stop.is_set():
                for instance in self.cluster.instances:
                    if not instance.alive():
                        continue
                    with contextlib.suppress(httpx.HTTPError):
                        text = (await client.get(f"{instance.url}/metrics")).text
                        total = sum(float(n) for n in self._LINE.findall(text))
                        self._seen[(instance.name, instance.started_at)] = total
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), 1.0)

    def stop(self) -> None:
        self._stop.set()

    def total(self) -> int:
        return int(sum(self._seen.values()))


# ----------------------------------------------------------------------------------------------- scale-out


@dataclass
class ScaleFigure:
    instances: int
    events: int
    rate: float
    verdict: Verdict


async def scale_run(instances: int, events: int, out: TextIO, workdir: Path | None = None) -> ScaleFigure:
    with _workdir(workdir) as directory:
        cluster = Cluster(directory, instances=instances)
        await asyncio.to_thread(cluster.start)
        try:
            ledger = Ledger()
            print(f"{instances} instance(s) of each service: {events:,} events ...", file=out, flush=True)
            rate = await _stream(
                cluster, ledger, enough=lambda: len(ledger.sent) >= events, run=f"scale{instances}"
            )
            verdict = await verify(cluster.dsn, cluster.bootstrap_servers, TOPIC_PREFIX, ledger)
            await _check_partitions_shared(cluster, instances, out)
            await _print_shares(cluster, out)
            return ScaleFigure(instances, len(ledger.acknowledged), rate, verdict)
        finally:
            await asyncio.to_thread(cluster.stop)


async def _check_partitions_shared(cluster: Cluster, instances: int, out: TextIO) -> None:
    """Prints how many record store consumers the broker has in their group, beside the instances started."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=cluster.bootstrap_servers)
    await admin.start()
    try:
        # aiokafka hands back the protocol's response; the embedded broker leaves the members' assignments
        # empty, so how the partitions split shows in the events each instance stored (_print_shares).
        described = await admin.describe_consumer_groups([RECORD_STORE_GROUP])
        groups = described[0].to_object()["groups"] if described else []
        members = sum(len(group["members"]) for group in groups)
        print(
            f"  {RECORD_STORE_GROUP}: {members} member(s) in the consumer group, {instances} instance(s) started",
            file=out,
        )
    except Exception as exc:
        print(f"  consumer group not described ({type(exc).__name__})", file=out)
    finally:
        await admin.close()


_SHARE_OF = {
    # kind: (what, a metrics line per process whose values add up to its share)
    "ingest-consumers": (
        "events stored",
        re.compile(
            r'^sailo_consumer_messages_total\{(?=[^}]*group="ingest-record-store")(?=[^}]*outcome="applied")'
            r"[^}]*\} ([0-9.e+]+)$",
            re.M,
        ),
    ),
    "retention": (
        "artifacts deleted",
        re.compile(r"^sailo_retention_items_total\{[^}]*\} ([0-9.e+]+)$", re.M),
    ),
}


async def _print_shares(cluster: Cluster, out: TextIO) -> None:
    """How the work split between the instances: the record store's events per consumer process (partitions),
    the sweeper's deletions per retention process (row locks)."""
    async with httpx.AsyncClient(timeout=2.0) as client:
        for kind, (what, line) in _SHARE_OF.items():
            shares = []
            for instance in cluster.of_kind(kind):
                try:
                    metrics = (await client.get(f"{instance.url}/metrics")).text
                    shares.append(f"{sum(float(n) for n in line.findall(metrics)):,.0f}")
                except httpx.HTTPError:
                    shares.append("?")
            print(f"  {what} per {kind} instance: {' / '.join(shares)}", file=out)


# ----------------------------------------------------------------------------------------------- soak


@dataclass
class SoakSample:
    at: float
    rss: dict[str, int]
    deletion_lag: float
    consumer_lag: int


SOAK_WARM_UP = 120.0
"""Seconds before memory counts: caches, pools and the interpreter's arenas fill up first."""
MEMORY_GROWTH_LIMIT = 0.20
MEMORY_GROWTH_FLOOR = 16 * 2**20
"""A process whose memory in the last third of the run exceeds the first third's by more than 20 % and by more
than 16 MiB is growing, not flat (a few MiB either way is the allocator's noise)."""
DELETION_LAG_LIMIT = 60.0
"""Seconds an item may wait past its due time: the harness sweeps every second, so anything near a minute means
the sweeper fell behind."""
RECORD_STORE_LAG_SLACK = 10.0
"""Seconds of the offered rate by which the record store's lag may differ between the first and last third."""


@dataclass
class SoakReport:
    minutes: float
    rate: float
    samples: list[SoakSample]
    verdict: Verdict
    settled: bool

    def _warm(self) -> list[SoakSample]:
        return [s for s in self.samples if s.at >= self.samples[0].at + SOAK_WARM_UP] or self.samples

    def _thirds(self) -> tuple[list[SoakSample], list[SoakSample]]:
        warm = self._warm()
        third = max(1, len(warm) // 3)
        return warm[:third], warm[-third:]

    def memory(self) -> dict[str, tuple[float, float, int]]:
        """Per process: median resident memory in the first and the last third after warm-up, and the peak."""
        first, last = self._thirds()
        figures = {}
        for name in sorted({name for s in self._warm() for name in s.rss}):
            early = [s.rss[name] for s in first if name in s.rss]
            late = [s.rss[name] for s in last if name in s.rss]
            if early and late:
                peak = max(s.rss.get(name, 0) for s in self._warm())
                figures[name] = (statistics.median(early), statistics.median(late), peak)
        return figures

    def failures(self) -> list[str]:
        v = self.verdict
        problems = []
        if not self.settled:
            problems.append("the system did not settle at the end")
        if v.lost:
            problems.append(f"{len(v.lost)} acknowledged events lost")
        if v.duplicated_effects:
            problems.append(f"{v.duplicated_effects} duplicated effects")
        if not self.samples:
            return problems
        for name, (early, late, _) in self.memory().items():
            if late > early * (1 + MEMORY_GROWTH_LIMIT) and late - early > MEMORY_GROWTH_FLOOR:
                problems.append(f"memory of {name} grew from {early / 2**20:.0f} to {late / 2**20:.0f} MiB")
        worst = max(s.deletion_lag for s in self._warm())
        if worst > DELETION_LAG_LIMIT:
            problems.append(f"deletion lag reached {worst:.0f}s")
        first, last = self._thirds()
        early_lag = statistics.median(s.consumer_lag for s in first)
        late_lag = statistics.median(s.consumer_lag for s in last)
        if late_lag > early_lag + self.rate * RECORD_STORE_LAG_SLACK:
            problems.append(f"the record store's lag grew from {early_lag:,.0f} to {late_lag:,.0f} events")
        return problems

    def print(self, out: TextIO) -> None:
        print(f"Sailo soak: {self.minutes:g} min at {self.rate:g} events/s offered", file=out)
        v = self.verdict
        print(
            f"  acknowledged {v.acknowledged:,}, stored {v.stored:,}, lost {len(v.lost)}, "
            f"duplicated effects {v.duplicated_effects}, certificates {v.certificates:,}",
            file=out,
        )
        if not self.samples:
            return
        print(
            "  resident memory per process (MiB): after warm-up first third / last third (median), max",
            file=out,
        )
        for name, (early, late, peak) in self.memory().items():
            print(
                f"    {name:<22} {early / 2**20:7.1f} -> {late / 2**20:7.1f}  ({late / early - 1:+.1%}), "
                f"max {peak / 2**20:.1f}",
                file=out,
            )
        warm = self._warm()
        first, last = self._thirds()
        print(
            "  deletion lag (how long the oldest due item has waited), after warm-up: "
            f"median {statistics.median(s.deletion_lag for s in warm):.1f}s, "
            f"max {max(s.deletion_lag for s in warm):.1f}s",
            file=out,
        )
        print(
            "  record store lag (events acknowledged, not yet stored), after warm-up: median first third "
            f"{statistics.median(s.consumer_lag for s in first):,.0f} / last third "
            f"{statistics.median(s.consumer_lag for s in last):,.0f}, max {max(s.consumer_lag for s in warm):,}",
            file=out,
        )
        problems = self.failures()
        print("RESULT: " + ("PASS" if not problems else "FAIL - " + "; ".join(problems)), file=out)


async def soak_run(minutes: float, rate: float, out: TextIO, workdir: Path | None = None) -> SoakReport:
    with _workdir(workdir) as directory:
        cluster = Cluster(directory)
        await asyncio.to_thread(cluster.start)
        try:
            ledger = Ledger()
            samples: list[SoakSample] = []
            began = time.monotonic()
            end = began + minutes * 60
            stop = asyncio.Event()
            print(f"soak: {minutes:g} min at {rate:g} events/s ...", file=out, flush=True)

            async def sample() -> None:
                async with httpx.AsyncClient(timeout=2.0) as client:
                    while not stop.is_set():
                        cluster.sample_memory()
                        samples.append(
                            SoakSample(
                                time.monotonic() - began,
                                {i.name: i.rss_samples[-1] for i in cluster.instances if i.rss_samples},
                                await _deletion_lag(cluster.dsn),
                                await _record_store_lag(cluster, ledger, client),
                            )
                        )
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(stop.wait(), 10.0)

            sampler = asyncio.create_task(sample())
            sender = Sender(cluster, EventStream("soak"), ledger, rate=rate)
            await sender.run(lambda: time.monotonic() >= end)
            ok = await settled(cluster.dsn, ledger) is None
            stop.set()
            await sampler
            verdict = await verify(cluster.dsn, cluster.bootstrap_servers, TOPIC_PREFIX, ledger)
            return SoakReport(minutes, rate, samples, verdict, ok)
        finally:
            await asyncio.to_thread(cluster.stop)


_SET_ASIDE = re.compile(
    r'^sailo_consumer_messages_total\{(?=[^}]*group="ingest-record-store")(?=[^}]*outcome="dead_lettered")[^}]*\}'
    r" ([0-9.e+]+)$",
    re.M,
)


async def _record_store_lag(cluster: Cluster, ledger: Ledger, client: httpx.AsyncClient) -> int:
    """Acknowledged events the record store has not taken yet: neither applied (its tracking rows) nor set aside
    (an old contact's event that came after its shredding; from the consumers' metrics). The broker's end
    offsets cannot tell: the embedded broker reports the start of a partition's last batch, not its end."""
    connection = await asyncpg.connect(cluster.dsn)
    try:
        applied = await connection.fetchval(
            "SELECT count(*) FROM messaging.processed_events WHERE consumer_group = $1", RECORD_STORE_GROUP
        )
    finally:
        await connection.close()
    set_aside = 0.0
    for instance in cluster.of_kind("ingest-consumers"):
        with contextlib.suppress(httpx.HTTPError):
            metrics = (await client.get(f"{instance.url}/metrics")).text
            set_aside += sum(float(n) for n in _SET_ASIDE.findall(metrics))
    return max(0, len(ledger.acknowledged) - int(applied) - int(set_aside))


async def _deletion_lag(dsn: str) -> float:
    """Seconds the longest-waiting due item has waited since it was both due and scheduled. The stream's old
    calls arrive years past their due time; counting from that would measure their age, not the sweeper. The
    scheduler writes a contact's items anew on each of its events, so `updated_at` is when the item's current
    due time was set."""
    connection = await asyncpg.connect(dsn)
    try:
        lag = await connection.fetchval(
            "SELECT extract(epoch FROM now() - min(greatest(due_at, updated_at))) FROM retention.schedule "
            "WHERE state = 'scheduled' AND due_at <= now()"
        )
        return float(lag or 0.0)
    finally:
        await connection.close()


@contextlib.contextmanager
def _workdir(given: Path | None) -> Iterator[Path]:
    if given is not None:
        given.mkdir(parents=True, exist_ok=True)
        yield given
        return
    with tempfile.TemporaryDirectory(prefix="sailo-faults-") as directory:
        yield Path(directory)
