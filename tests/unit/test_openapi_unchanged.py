"""Each service's OpenAPI document is what platforms and caseworkers' tools are built against: it changes only
on purpose. The checked-in copies under data/openapi are that purpose written down; a code change that alters a
route, a schema or a description by accident fails here.

A deliberate change: `SAILO_UPDATE_OPENAPI=1 .venv/bin/pytest tests/unit/test_openapi_unchanged.py`, then review
the diff of tests/unit/data/openapi/ in the same commit.
"""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path

import pytest

from shared.platform.settings import Settings

SNAPSHOTS = Path(__file__).parent / "data" / "openapi"


@pytest.mark.parametrize("service", ["ingest", "retention", "dsr", "export"])
def test_openapi_document_is_unchanged(service: str, tmp_path: Path) -> None:
    create_app = importlib.import_module(f"services.{service}.app").create_app
    app = create_app(Settings(service_name=service, sailo_data_dir=tmp_path))
    document = json.dumps(app.openapi(), indent=2, sort_keys=True) + "\n"
    snapshot = SNAPSHOTS / f"{service}.json"
    if os.environ.get("SAILO_UPDATE_OPENAPI") == "1":
        snapshot.write_text(document, encoding="utf-8")
    expected = json.loads(snapshot.read_text(encoding="utf-8"))
    actual = json.loads(document)
    changed = sorted(
        path
        for path in set(expected["paths"]) | set(actual["paths"])
        if expected["paths"].get(path) != actual["paths"].get(path)
    )
    assert not changed, f"{service}: routes changed: {changed}"
    assert actual == expected, f"{service}: the OpenAPI document changed outside its paths (schemas, info)"
