"""`sailo schemas`: the event contracts' JSON Schema, written into schemas/."""

from __future__ import annotations

import argparse


def cmd_schemas(_: argparse.Namespace) -> int:
    from shared.contracts.published import write_json_schemas

    for path in write_json_schemas():
        print(path)
    return 0
