"""`python -m tests.faults [faults|scale|soak] [options]`: run the harness and print its report.

make faults    a fault-free stream, then the same under crashes, database and broker faults (exit 1 if
               anything acknowledged is lost or any effect happens twice)
make scale     1, 2 and 3 instances of every service: throughput per instance count, the same checks
make soak      a steady stream for 30 minutes: memory per process, deletion lag, consumer lag
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from tests.faults.harness import Plan, fault_run, scale_run, soak_run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.faults", description=__doc__.split("\n")[0])
    parser.add_argument("mode", nargs="?", choices=("faults", "scale", "soak"), default="faults")
    parser.add_argument("--events", type=int, default=None, help="events per stream")
    parser.add_argument("--crashes", type=int, default=24, help="kill -9 and forced crash points, at least")
    parser.add_argument(
        "--outage-seconds", type=float, default=8.0, help="how long the broker is unreachable"
    )
    parser.add_argument("--instances", type=int, default=1, help="instances of every service (faults mode)")
    parser.add_argument("--max-instances", type=int, default=3, help="scale mode: 1 up to this many")
    parser.add_argument("--minutes", type=float, default=30.0, help="soak mode: how long")
    parser.add_argument(
        "--rate", type=float, default=None, help="events/s offered (soak default 300; else flat out)"
    )
    parser.add_argument(
        "--workdir", type=Path, default=None, help="keep data and logs here (else a temp dir)"
    )
    parser.add_argument("--seed", type=int, default=1, help="the random choices of kills and crash points")
    args = parser.parse_args(argv)
    return asyncio.run(_run(args))


async def _run(args: argparse.Namespace) -> int:
    out = sys.stdout
    if args.mode == "faults":
        plan = Plan(
            events=args.events or 100_000,
            crashes=args.crashes,
            outage_seconds=args.outage_seconds,
            instances=args.instances,
            rate=args.rate,
            seed=args.seed,
        )
        report = await fault_run(plan, out, args.workdir)
        report.print(out)
        return 1 if report.failures() else 0
    if args.mode == "scale":
        figures = [
            await scale_run(n, args.events or 30_000, out, args.workdir / str(n) if args.workdir else None)
            for n in range(1, args.max_instances + 1)
        ]
        print("Sailo scale-out: every service N times against one database and broker", file=out)
        print("  instances  events    events/s  vs 1   lost  duplicated effects  certificates", file=out)
        failed = False
        for f in figures:
            v = f.verdict
            print(
                f"  {f.instances:>9}  {f.events:>7,}  {f.rate:>9,.0f}  {f.rate / figures[0].rate:>4.2f}"
                f"  {len(v.lost):>5}  {v.duplicated_effects:>18}  {v.certificates:>12,}",
                file=out,
            )
            failed |= bool(v.lost or v.duplicated_effects)
        print("RESULT: " + ("FAIL" if failed else "PASS"), file=out)
        return 1 if failed else 0
    report_soak = await soak_run(args.minutes, args.rate or 300.0, out, args.workdir)
    report_soak.print(out)
    return 1 if report_soak.failures() else 0


if __name__ == "__main__":
    sys.exit(main())
