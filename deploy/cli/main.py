"""The `sailo` argument parser and main(), the console script's entry point; the commands live beside it."""

from __future__ import annotations

import argparse
import os

from deploy.cli.apikeys import cmd_apikey_create, cmd_apikey_list, cmd_apikey_revoke
from deploy.cli.audit import cmd_audit_export, cmd_audit_public_key, cmd_audit_verify
from deploy.cli.dev import cmd_dev
from deploy.cli.loans import cmd_loan_fetch
from deploy.cli.migrate import cmd_migrate
from deploy.cli.retention import cmd_retention_replan
from deploy.cli.schemas import cmd_schemas
from deploy.cli.tokens import cmd_token


def _audit_topic_arguments(parser: argparse.ArgumentParser, topic_help: str) -> None:
    parser.add_argument("--topic", nargs="?", const="", metavar="NAME", help=topic_help)
    parser.add_argument("--bootstrap-servers", help="broker list (default: KAFKA_BOOTSTRAP_SERVERS)")


def main(argv: list[str] | None = None) -> int:
    from shared.security.auth import Role

    parser = argparse.ArgumentParser(
        prog="sailo", description="Sailo: lawful keeping of customer-service contacts"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    dev = commands.add_parser("dev", help="run PostgreSQL, the broker and the four services locally")
    dev.add_argument("--pg-port", type=int, default=int(os.environ.get("SAILO_PG_PORT", "55432")))
    dev.add_argument("--kafka-port", type=int, default=int(os.environ.get("SAILO_KAFKA_PORT", "59092")))
    dev.set_defaults(func=cmd_dev)

    token = commands.add_parser("token", help="print a bearer token from the local issuer")
    token.add_argument("--role", required=True, choices=[r.value for r in Role])
    token.add_argument("--agent", help="agent id (required for --role agent)")
    token.add_argument("--institute", help="institute id (for --role institute)")
    token.add_argument("--subject", help="the token's subject (default: local-ROLE)")
    token.add_argument("--ttl", type=int, default=8 * 3600, help="lifetime in seconds")
    token.set_defaults(func=cmd_token)

    commands.add_parser("migrate", help="apply database migrations").set_defaults(func=cmd_migrate)
    commands.add_parser("schemas", help="export event contract JSON Schemas").set_defaults(func=cmd_schemas)

    audit = commands.add_parser("audit", help="audit log tools").add_subparsers(
        dest="audit_command", required=True
    )
    verify = audit.add_parser(
        "verify", help="verify an audit log: a dump (JSON lines, e.g. from kcat) or the topic itself"
    )
    verify.add_argument("file", nargs="?", help='JSON lines: audit entries and {"checkpoint": ...} lines')
    verify.add_argument(
        "--public-key",
        action="append",
        default=[],
        help="PEM public key of the checkpoints (repeat for rotated keys)",
    )
    _audit_topic_arguments(verify, "read the topic (default: KAFKA_TOPIC_PREFIX + audit) instead of a FILE")
    verify.set_defaults(func=cmd_audit_verify)
    export = audit.add_parser("export", help="write the audit topic to a JSON-lines file, as kcat -e would")
    export.add_argument("--out", required=True, help="the file to write")
    _audit_topic_arguments(export, "the topic (default: KAFKA_TOPIC_PREFIX + audit)")
    export.set_defaults(func=cmd_audit_export, topic="")
    audit.add_parser(
        "public-key", help="print the public key of the checkpoint signing key (PEM; key_id on stderr)"
    ).set_defaults(func=cmd_audit_public_key)

    apikey = commands.add_parser("apikey", help="platforms' API keys").add_subparsers(
        dest="apikey_command", required=True
    )
    create = apikey.add_parser("create", help="create a platform's API key and print it, once")
    create.add_argument("--platform", required=True, help="the platform's code, e.g. genesys-prh")
    create.add_argument(
        "--rate", type=float, help="events per second (default: INGEST_RATE_LIMIT_PER_SECOND)"
    )
    create.add_argument("--burst", type=int, help="events at once (default: INGEST_RATE_LIMIT_BURST)")
    create.add_argument("--created-by", help="who asked for it, for the record (default: the login name)")
    create.set_defaults(func=cmd_apikey_create)
    listing = apikey.add_parser("list", help="list API keys (never their secrets)")
    listing.add_argument("--platform", help="only this platform's keys")
    listing.set_defaults(func=cmd_apikey_list)
    revoke = apikey.add_parser("revoke", help="revoke an API key")
    revoke.add_argument("key_id", metavar="KEYID", help="the key's id, as `sailo apikey list` shows it")
    revoke.set_defaults(func=cmd_apikey_revoke)

    retention = commands.add_parser("retention", help="retention tools").add_subparsers(
        dest="retention_command", required=True
    )
    replan = retention.add_parser(
        "replan", help="recompute schedules under the current policy files; a dry run unless --apply"
    )
    replan.add_argument(
        "--apply", action="store_true", help="rewrite the schedule (after reviewing the dry run)"
    )
    replan.add_argument("--show", type=int, default=20, help="how many changed items to list (default 20)")
    replan.set_defaults(func=cmd_retention_replan)

    loan = commands.add_parser("loan", help="an institute's tools for its research loans").add_subparsers(
        dest="loan_command", required=True
    )
    fetch = loan.add_parser(
        "fetch", help="download a delivered loan's package and key, unpack it and verify every recording"
    )
    fetch.add_argument("loan_id", metavar="LOAN_ID", help="the loan's id")
    fetch.add_argument("--export-url", required=True, help="the export service, e.g. https://export.example")
    fetch.add_argument("--token", help="the institute's bearer token (default: SAILO_TOKEN)")
    fetch.add_argument("--out", required=True, help="the directory to unpack into")
    fetch.add_argument(
        "--progress", action="store_true", help="draw the progress bar even when stderr is not a terminal"
    )
    fetch.set_defaults(func=cmd_loan_fetch)

    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result
