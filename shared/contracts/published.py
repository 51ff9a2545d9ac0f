"""The published JSON Schemas of every contract, the files under schemas/ that platforms integrate against.

Both kinds of contract meet here (the contact events from shared.contracts.events and Sailo's own domain
events from shared.contracts.domain_events), so neither module needs the other to publish. `make schemas`
writes them; a unit test fails when the checked-in files and the contracts differ.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from shared.contracts import domain_events
from shared.contracts.events import CONTACT_EVENT_ADAPTER, DeadLetter, SealedContactEvent

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"


def json_schemas() -> dict[str, dict[str, Any]]:
    """The published contracts, keyed by file name under schemas/."""
    return {
        "contact-event.v1.json": CONTACT_EVENT_ADAPTER.json_schema(),
        "sealed-contact-event.v1.json": SealedContactEvent.model_json_schema(),
        "dead-letter.v1.json": DeadLetter.model_json_schema(),
        **domain_events.json_schemas(),
    }


def write_json_schemas(directory: Path = SCHEMA_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in json_schemas().items():
        path = directory / name
        path.write_text(
            json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        written.append(path)
    return written
