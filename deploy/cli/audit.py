"""`sailo audit`: verify an audit log (a dump or the topic), export the topic, print the checkpoints' public key."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def cmd_audit_verify(args: argparse.Namespace) -> int:
    import tempfile

    from shared.audit.chain import verify_file

    if (args.file is None) == (args.topic is None):
        print("sailo audit verify: give a FILE or --topic, not both", file=sys.stderr)
        return 2
    keys = [Path(p) for p in args.public_key] or None
    try:
        if args.topic is None:
            report = verify_file(Path(args.file), public_key=keys)
        else:
            with tempfile.TemporaryDirectory(prefix="sailo-audit-") as directory:
                dump = Path(directory) / "audit.jsonl"
                if (failed := _dump_audit_topic(args, dump)) is not None:
                    return failed
                report = verify_file(dump, public_key=keys)
    except (OSError, ValueError) as exc:  # a file or key that cannot be read: say which kind, not its content
        print(f"sailo audit verify: cannot read the input or the key ({type(exc).__name__})", file=sys.stderr)
        return 2
    if report.ok and report.checked == 0:
        # Nothing was shown intact. Almost always a dump that failed (kcat could not reach the broker and left
        # an empty file), which must not pass for a clean audit.
        print("audit log NOT verified: the input holds no entries", file=sys.stderr)
        return 1
    if report.ok:
        print(
            f"audit log intact: {report.checked} entries checked, {report.verified_size} covered by checkpoints"
            + (f", {report.duplicates} exact re-deliveries skipped" if report.duplicates else "")
        )
        return 0
    print(
        f"audit log NOT intact: {report.problem} at position {report.first_bad_position}"
        + (f" ({report.detail})" if report.detail else ""),
        file=sys.stderr,
    )
    return 1


def _dump_audit_topic(args: argparse.Namespace, path: Path) -> int | None:
    """Write the audit topic to ``path``; an exit code if that failed, else None."""
    import asyncio

    from aiokafka.errors import KafkaError

    from shared.audit.relay import AUDIT_TOPIC, dump_topic
    from shared.platform.settings import Settings

    settings = Settings()
    if args.bootstrap_servers:
        settings = settings.model_copy(update={"kafka_bootstrap_servers": args.bootstrap_servers})
    topic = args.topic or settings.topic(AUDIT_TOPIC)

    async def dump() -> int:
        with path.open("wb") as out:
            return await dump_topic(settings, out, topic=topic)

    try:
        count = asyncio.run(dump())
    except LookupError:
        print(f"sailo audit: topic {topic} does not exist", file=sys.stderr)
        return 2
    except (KafkaError, TimeoutError, OSError) as exc:
        print(f"sailo audit: reading {topic} failed ({type(exc).__name__})", file=sys.stderr)
        return 2
    print(f"read {count} messages from {topic}", file=sys.stderr)
    return None


def cmd_audit_export(args: argparse.Namespace) -> int:
    out = Path(args.out)
    partial = out.with_name(out.name + ".partial")
    if (failed := _dump_audit_topic(args, partial)) is not None:
        partial.unlink(missing_ok=True)
        return failed
    partial.replace(out)  # the file appears whole or not at all
    return 0


def cmd_audit_public_key(_: argparse.Namespace) -> int:
    from shared.audit.chain import key_id
    from shared.audit.log import audit_signing_key, public_key_pem
    from shared.platform.settings import Settings

    try:
        private_key = audit_signing_key(Settings())
    except (OSError, ValueError) as exc:
        print(f"sailo audit public-key: no usable signing key ({exc})", file=sys.stderr)
        return 2
    sys.stdout.write(public_key_pem(private_key).decode())
    print(f"key_id {key_id(private_key.public_key())}", file=sys.stderr)
    return 0
