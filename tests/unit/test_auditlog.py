"""Unit tests for the audit log's writer API and the relay's pure parts (no I/O)."""

from __future__ import annotations

import base64
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from shared.audit.chain import (
    MAX_OBJECT_IDS,
    Action,
    AuditChain,
    MerkleFrontier,
    Outcome,
    merkle_root,
    validate_fields,
)
from shared.audit.log import (
    SYSTEM_ACTOR_NAMESPACE,
    SYSTEM_ROLE,
    actor_ref,
    audit_signing_key,
    audit_signing_key_file,
    load_signing_key,
    outbox_entries,
    public_key_pem,
    system_actor,
)
from shared.audit.relay import merge_in_order
from shared.platform.crypto import BlindIndex
from shared.platform.keyfiles import local_key_pair
from shared.platform.settings import Settings

BLIND_INDEX = BlindIndex(bytes(range(32)))
WHEN = datetime(2026, 3, 2, 9, 15, tzinfo=timezone(timedelta(hours=2)))


def fields(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "actor": actor_ref(BLIND_INDEX, "agent-17"),
        "role": "agent",
        "action": Action.LISTEN,
        "object_type": "recording",
        "object_ids": [uuid.uuid4()],
        "service": "ingest",
        "occurred_at": WHEN,
    }
    values.update(overrides)
    return values


def test_an_entry_is_validated_and_chains_as_recorded() -> None:
    [entry] = outbox_entries(**fields(outcome=Outcome.DENIED, reason="not_own_contact"))
    assert entry["occurred_at"] == "2026-03-02T07:15:00Z"  # stored in UTC
    assert entry["outcome"] == "denied" and entry["reason"] == "not_own_contact"
    assert uuid.UUID(entry["event_id"])
    event = AuditChain().append(**entry)  # what passed record() passes the chain, unchanged
    assert event.model_dump(mode="json") | {"sequence": 0} == {
        **entry,
        "sequence": 0,
        "prev_hash": event.prev_hash,
        "entry_hash": event.entry_hash,
    }


def test_a_large_batch_of_object_ids_becomes_several_entries() -> None:
    ids = [uuid.uuid4() for _ in range(2 * MAX_OBJECT_IDS + 500)]
    entries = outbox_entries(**fields(action=Action.EXPORT_STEP, object_type="loan", object_ids=ids))
    assert [len(entry["object_ids"]) for entry in entries] == [MAX_OBJECT_IDS, MAX_OBJECT_IDS, 500]
    assert [i for entry in entries for i in entry["object_ids"]] == [str(i) for i in ids]
    assert len({entry["event_id"] for entry in entries}) == 3
    assert len(outbox_entries(**fields(object_ids=[]))) == 1  # an action on no particular object


NAME, PHONE, HETU = "Matti Meikäläinen", "+358401234567", "131052-308T"


@pytest.mark.parametrize(
    ("overrides", "refused"),
    [
        ({"actor": NAME}, NAME),
        ({"actor": PHONE}, PHONE),
        ({"object_ids": [HETU]}, HETU),
        ({"object_ids": [uuid.uuid4(), NAME]}, NAME),
        ({"object_ids": [str(uuid.uuid4()).upper()]}, None),  # one id, one spelling
        ({"role": "Matti"}, "Matti"),
        ({"reason": "asked about his divorce"}, "asked about his divorce"),
        ({"reason": f"caller_{PHONE}"}, PHONE),
        ({"object_type": "contact\n"}, None),
        ({"service": ""}, None),
        ({"action": "gossip"}, "gossip"),
        ({"outcome": "maybe"}, "maybe"),
        ({"occurred_at": datetime(2026, 3, 2, 9, 15)}, None),  # no time zone
        ({"role": "r" * 65}, None),
    ],
)
def test_anything_but_pseudonyms_and_codes_is_refused_without_repeating_it(
    overrides: dict[str, Any], refused: str | None
) -> None:
    with pytest.raises(ValueError, match="audit entry refused") as caught:
        outbox_entries(**fields(**overrides))
    message = str(caught.value)
    if refused is not None:
        assert refused not in message
    # Nor in a chained ValidationError, whose text quotes the input: it is suppressed.
    assert caught.value.__context__ is None or caught.value.__suppress_context__


def test_the_chain_fields_cannot_be_given() -> None:
    with pytest.raises(TypeError):
        validate_fields(sequence=5, **outbox_entries(**fields())[0])


def test_actor_and_system_actor_ids() -> None:
    first, again = actor_ref(BLIND_INDEX, "agent-17"), actor_ref(BLIND_INDEX, "agent-17")
    assert first == again != actor_ref(BLIND_INDEX, "agent-18")
    assert first.version == 8  # keyed, not derivable from the subject without the key
    assert first != BlindIndex(bytes(32)).pseudonym("actor", "agent-17")
    # Fixed and public, so an auditor can tell a service's own actions apart.
    assert system_actor("retention") == uuid.uuid5(SYSTEM_ACTOR_NAMESPACE, "retention")
    assert system_actor("retention") != system_actor("dsr")
    assert outbox_entries(**fields(actor=system_actor("retention"), role=SYSTEM_ROLE, service="retention"))
    with pytest.raises(ValueError):
        system_actor("Retention Service")


def test_frontier_is_stored_and_resumed_exactly() -> None:
    leaves = [bytes([i]) * 32 for i in range(23)]
    frontier = MerkleFrontier()
    for size, leaf in enumerate(leaves, start=1):
        frontier.append(leaf)
        resumed = MerkleFrontier.restore(frontier.size, frontier.nodes)
        assert resumed.root() == frontier.root() == merkle_root(leaves[:size])
    resumed = MerkleFrontier.restore(frontier.size, list(frontier.nodes))
    resumed.append(b"\xff" * 32)
    assert resumed.root() == merkle_root([*leaves, b"\xff" * 32])
    with pytest.raises(ValueError):
        MerkleFrontier.restore(23, frontier.nodes[:-1])  # 23 = 10111b needs four nodes
    with pytest.raises(ValueError):
        MerkleFrontier.restore(4, [b"short"])


def test_checkpoints_are_published_right_after_the_last_entry_they_cover() -> None:
    entries = [(sequence, f"e{sequence}".encode()) for sequence in range(10, 14)]
    checkpoints = [(10, b"c10"), (12, b"c12"), (14, b"c14")]
    order = [message for _, _, message in merge_in_order(entries, checkpoints)]
    # c10 covers sequences 0..9, all published before this batch: it goes first.
    assert order == [b"c10", b"e10", b"e11", b"c12", b"e12", b"e13", b"c14"]
    assert merge_in_order([], [(7, b"c7")]) == [(0, 7, b"c7")]
    assert [m for _, _, m in merge_in_order(entries[:1], [])] == [b"e10"]


def test_entry_times_keep_their_instant() -> None:
    [entry] = outbox_entries(**fields(occurred_at=datetime(2026, 3, 2, 7, 15, 0, 250_000, tzinfo=UTC)))
    assert entry["occurred_at"] == "2026-03-02T07:15:00.250000Z"


PRODUCTION = {
    "sailo_env": "production",
    "key_encryption_key": base64.b64encode(bytes(range(32))).decode(),
    "blind_index_key": base64.b64encode(bytes(range(1, 33))).decode(),
    "auth_jwks_url": "https://idp.example/.well-known/jwks.json",
}


def test_production_refuses_to_start_without_the_checkpoint_signing_key(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="AUDIT_SIGNING_KEY_FILE"):
        Settings.model_validate(PRODUCTION)
    private, _public = local_key_pair(tmp_path, "mounted")
    settings = Settings.model_validate({**PRODUCTION, "audit_signing_key_file": private})
    assert audit_signing_key_file(settings) == private
    assert (
        public_key_pem(audit_signing_key(settings)) == (tmp_path / "keys" / "mounted-public.pem").read_bytes()
    )
    # No key pair is ever made up in production, even if a settings object skipped validation.
    unchecked = settings.model_copy(update={"audit_signing_key_file": None, "sailo_data_dir": tmp_path})
    with pytest.raises(ValueError, match="AUDIT_SIGNING_KEY_FILE"):
        audit_signing_key_file(unchecked)


def test_outside_production_processes_starting_together_share_one_key_pair(tmp_path: Path) -> None:
    settings = Settings.model_validate({"sailo_env": "development", "sailo_data_dir": tmp_path})
    with ThreadPoolExecutor(max_workers=8) as pool:
        keys = list(pool.map(lambda _: public_key_pem(audit_signing_key(settings)), range(16)))
    assert len(set(keys)) == 1
    assert keys[0] == (tmp_path / "keys" / "audit-public.pem").read_bytes()
    assert (tmp_path / "keys" / "audit-private.pem").stat().st_mode & 0o077 == 0  # the private key is private
    with pytest.raises(ValueError):
        load_signing_key((tmp_path / "keys" / "audit-public.pem").read_bytes())
