"""`sailo retention replan`: schedules recomputed under the policy files as they are now."""

from __future__ import annotations

import argparse


def cmd_retention_replan(args: argparse.Namespace) -> int:
    """Recompute every pending schedule item under the policy files as they are now; print the diff."""
    import asyncio
    from collections import Counter

    from services.retention.service.schedule import replan
    from shared.platform.db import create_engine, create_sessionmaker
    from shared.platform.settings import Settings
    from shared.policy.loader import load_policies

    settings = Settings()
    policies = load_policies(settings.policy_dir)

    async def run() -> int:
        engine = create_engine(settings)
        try:
            async with create_sessionmaker(engine)() as session, session.begin():
                changes = await replan(session, policies, apply=args.apply)
                if not args.apply:
                    await session.rollback()
        finally:
            await engine.dispose()
        summary = Counter((c.register, c.artifact_class, c.kind) for c in changes)
        for (register, artifact_class, kind), count in sorted(summary.items()):
            print(f"{register}\t{artifact_class}\t{kind}\t{count}")
        for change in changes[: args.show]:
            print(
                f"  {change.contact_ref} {change.artifact_class} {change.item or '-'}: "
                f"{change.old_version}/{change.old_due} -> {change.new_version}/{change.new_due}"
            )
        verb = "changed" if args.apply else "would change (dry run; --apply to rewrite the schedule)"
        print(f"{len(changes)} schedule item(s) {verb}")
        return 0

    return asyncio.run(run())
