"""`sailo migrate`: the database migrations, applied to DATABASE_URL."""

from __future__ import annotations

import argparse


def cmd_migrate(_: argparse.Namespace) -> int:
    from shared.platform.db import upgrade
    from shared.platform.settings import Settings

    upgrade(Settings())
    return 0
