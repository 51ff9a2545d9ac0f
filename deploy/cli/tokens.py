"""`sailo token`: a bearer token from the local issuer, for development."""

from __future__ import annotations

import argparse
import sys


def cmd_token(args: argparse.Namespace) -> int:
    from shared.platform.settings import Settings
    from shared.security.auth import Role, local_issuer_keys, mint_token

    settings = Settings()
    private, _public = local_issuer_keys(settings.sailo_data_dir)
    role = Role(args.role)
    if role is Role.AGENT and not args.agent:
        print("sailo token: --agent ID is required for --role agent", file=sys.stderr)
        return 2
    if role is Role.INSTITUTE and not args.institute:
        print("sailo token: --institute ID is required for --role institute", file=sys.stderr)
        return 2
    token = mint_token(
        private.read_bytes(),
        issuer=settings.auth_issuer,
        audience=settings.auth_audience,
        role=role,
        subject=args.subject or f"local-{role.value}",
        agent_id=args.agent if role is Role.AGENT else None,
        institute_id=args.institute if role is Role.INSTITUTE else None,
        ttl_seconds=args.ttl,
    )
    print(token)
    return 0
