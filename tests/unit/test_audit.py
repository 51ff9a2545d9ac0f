"""Unit tests for shared.audit.chain: entries, hash chain, RFC 6962 Merkle proofs, checkpoints and verification."""

from __future__ import annotations

import base64
import copy
import hashlib
import itertools
import json
import uuid
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from shared.audit.chain import (
    GENESIS_HASH,
    Action,
    AuditChain,
    AuditEvent,
    Checkpoint,
    MerkleFrontier,
    Problem,
    chain,
    checkpoint_body,
    consistency_proof,
    inclusion_proof,
    key_id,
    merkle_root,
    sign_checkpoint,
    verify_checkpoint,
    verify_consistency,
    verify_file,
    verify_inclusion,
    verify_stream,
)
from shared.platform.crypto import BlindIndex

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
OTHER_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
T0 = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)
PSEUDONYMS = BlindIndex(bytes(32))
Entry = dict[str, Any]


def _record(i: int) -> Entry:
    return {
        "event_id": str(uuid.UUID(int=i + 1)),
        "occurred_at": T0 + timedelta(seconds=i),
        "actor": str(PSEUDONYMS.pseudonym("agent", str(i % 5))),
        "role": "agent",
        "action": list(Action)[i % len(Action)],
        "object_type": "contact",
        "object_ids": [str(PSEUDONYMS.pseudonym("contact", str(i)))],
        "outcome": "success",
        "reason": "own_contact" if i % 3 == 0 else None,
        "service": "api",
    }


@cache
def _events(n: int) -> tuple[AuditEvent, ...]:
    return tuple(chain(_record(i) for i in range(n)))


def _entries(n: int) -> list[Entry]:
    """A fresh, mutable JSON form of an intact stream of n entries."""
    return [event.model_dump(mode="json") for event in _events(1000)[:n]]


def _leaves(entries: list[Entry]) -> list[bytes]:
    return [bytes.fromhex(entry["entry_hash"]) for entry in entries]


def _checkpoints(entries: list[Entry], every: int, key: Ed25519PrivateKey = KEY) -> list[Checkpoint]:
    leaves = _leaves(entries)
    sizes = {*range(every, len(entries) + 1, every), len(entries)}
    return [
        sign_checkpoint(key, leaves, size, issued_at=T0 + timedelta(hours=size)) for size in sorted(sizes)
    ]


def _rehash(entry: Entry) -> Entry:
    """What a forger does: recompute the entry's own hash, with nothing but the standard library."""
    body = {k: v for k, v in entry.items() if k != "entry_hash"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    entry["entry_hash"] = hashlib.sha256(canonical).hexdigest()
    return entry


def _rewrite_tail(entries: list[Entry], start: int) -> list[Entry]:
    """Change entry `start` and re-link and re-hash every entry after it, so the chain is intact again."""
    entries[start]["outcome"] = "failed"
    for i in range(start, len(entries)):
        entries[i]["prev_hash"] = entries[i - 1]["entry_hash"] if i else GENESIS_HASH
        _rehash(entries[i])
    return entries


def _forged(entries: list[Entry], sequence: int) -> Entry:
    """A forged entry in the place of `sequence`, linked to its predecessor and with a correct own hash."""
    forged = copy.deepcopy(entries[sequence])
    forged.update(event_id=str(uuid.uuid4()), action="disclose", object_ids=[str(uuid.uuid4())])
    return _rehash(forged)


# --- entries and the hash chain -----------------------------------------------------------------------------


def test_entry_hash_and_chain_can_be_recomputed_with_the_standard_library() -> None:
    entries = _entries(5)
    assert [entry["sequence"] for entry in entries] == [0, 1, 2, 3, 4]
    assert entries[0]["prev_hash"] == GENESIS_HASH
    for previous, entry in itertools.pairwise(entries):
        assert entry["prev_hash"] == previous["entry_hash"]
    for entry in entries:
        assert _rehash(dict(entry))["entry_hash"] == entry["entry_hash"]
    assert AuditEvent.model_validate_json(json.dumps(entries[3])) == _events(5)[3]


def test_chain_resumes_from_the_last_entry() -> None:
    first = AuditChain()
    head = [first.append(**_record(i)) for i in range(3)]
    resumed = AuditChain(last=first.last)
    tail = [resumed.append(**_record(i)) for i in range(3, 6)]
    assert [*head, *tail] == list(_events(6))
    assert chain([_record(3)], last=(2, head[2].entry_hash)) == [tail[0]]
    assert AuditChain().last is None


def test_chain_assigns_sequence_and_hashes_itself() -> None:
    with pytest.raises(TypeError):
        AuditChain().append(**_record(0), sequence=7)
    with pytest.raises(ValueError):
        AuditChain(last=(3, "not a hash"))


@pytest.mark.parametrize(
    "change",
    [
        {"object_ids": ["Maija Meikäläinen"]},
        {"object_ids": ["131052-308T"]},
        {"object_ids": [str(uuid.uuid4()).upper()]},  # a UUID, but not in the one canonical spelling
        {"object_ids": ["{" + str(uuid.uuid4()) + "}"]},
        {"reason": "asiakas kysyi osoitteenmuutoksesta"},
        {"reason": "Called about her divorce"},
        {"reason": "x" * 65},
        {"actor": "Aino Agentti"},
        {"actor": "agent-17"},
        {"object_ids": [str(uuid.uuid4())] * 1001},
        {"role": "agent; DROP TABLE"},
        {"occurred_at": datetime(2026, 3, 2, 7, 0)},  # naive: which zone was meant is unknowable
        {"action": "gossip"},
        {"name": "Maija Meikäläinen"},
    ],
)
def test_entry_refuses_personal_data_and_free_text(change: Entry) -> None:
    with pytest.raises(ValidationError):
        AuditChain().append(**{**_record(0), **change})


def test_entry_refuses_a_hash_that_does_not_match() -> None:
    entry = _entries(1)[0]
    AuditEvent.model_validate(entry)
    entry["entry_hash"] = "1" * 64
    with pytest.raises(ValidationError, match="entry_hash does not match"):
        AuditEvent.model_validate(entry)


# --- Merkle tree --------------------------------------------------------------------------------------------

# RFC 6962 reference data, as used by the certificate-transparency implementations' tests.
CT_LEAVES = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]
CT_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
CT_INCLUSION = [  # (leaf index, tree size, audit path)
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
CT_CONSISTENCY = [  # (old size, new size, proof)
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]


def _h(*parts: bytes) -> bytes:
    return hashlib.sha256(b"".join(parts)).digest()


def _reference_root(leaves: list[bytes]) -> bytes:
    """RFC 6962 §2.1 written out again, slice by slice, to check the library against."""
    if len(leaves) == 1:
        return _h(b"\x00", leaves[0])
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return _h(b"\x01", _reference_root(leaves[:k]), _reference_root(leaves[k:]))


def test_merkle_roots_match_the_rfc6962_reference_data() -> None:
    frontier = MerkleFrontier()
    assert merkle_root([]).hex() == frontier.root().hex() == CT_ROOTS[0]
    for size in range(1, 9):
        frontier.append(CT_LEAVES[size - 1])
        assert merkle_root(CT_LEAVES[:size]).hex() == frontier.root().hex() == CT_ROOTS[size]


@pytest.mark.parametrize(("index", "size", "path"), CT_INCLUSION)
def test_inclusion_proofs_match_the_rfc6962_reference_data(index: int, size: int, path: list[str]) -> None:
    proof = inclusion_proof(CT_LEAVES[:size], index)
    assert [node.hex() for node in proof] == path
    assert verify_inclusion(CT_LEAVES[index], index, size, proof, bytes.fromhex(CT_ROOTS[size]))


@pytest.mark.parametrize(("old", "new", "path"), CT_CONSISTENCY)
def test_consistency_proofs_match_the_rfc6962_reference_data(old: int, new: int, path: list[str]) -> None:
    proof = consistency_proof(CT_LEAVES[:new], old)
    assert [node.hex() for node in proof] == path
    old_root, new_root = bytes.fromhex(CT_ROOTS[old]), bytes.fromhex(CT_ROOTS[new])
    assert verify_consistency(old, new, old_root, new_root, proof)


def test_a_three_leaf_tree_computed_by_hand() -> None:
    a, b, c = (_h(bytes([i])) for i in range(3))
    la, lb, lc = (_h(b"\x00", x) for x in (a, b, c))
    root = _h(b"\x01", _h(b"\x01", la, lb), lc)
    assert merkle_root([a, b, c]) == root
    assert inclusion_proof([a, b, c], 2) == [_h(b"\x01", la, lb)]
    assert inclusion_proof([a, b, c], 0) == [lb, lc]
    assert consistency_proof([a, b, c], 2) == [lc]  # the old root is a node of the new tree
    assert consistency_proof([a, b, c], 1) == [lb, lc]
    assert verify_consistency(2, 3, _h(b"\x01", la, lb), root, [lc])


def _tree(size: int, seed: int) -> list[bytes]:
    return [_h(f"{seed}:{i}".encode()) for i in range(size)]


@settings(max_examples=40, deadline=None)
@given(size=st.integers(1, 200), seed=st.integers(0, 2**32))
def test_every_inclusion_proof_verifies_and_a_wrong_one_does_not(size: int, seed: int) -> None:
    leaves = _tree(size, seed)
    root = merkle_root(leaves)
    assert root == _reference_root(leaves)
    for index in range(size):
        proof = inclusion_proof(leaves, index)
        assert verify_inclusion(leaves[index], index, size, proof, root)
        assert not verify_inclusion(_h(b"forged"), index, size, proof, root)
        assert not verify_inclusion(leaves[index], index, size, proof, _h(b"another root"))
        if size > 1:
            assert not verify_inclusion(leaves[index], (index + 1) % size, size, proof, root)
            assert not verify_inclusion(leaves[index], index, size, proof[:-1], root)
    assert not verify_inclusion(leaves[0], size, size, [], root)


@settings(max_examples=40, deadline=None)
@given(size=st.integers(1, 200), seed=st.integers(0, 2**32))
def test_every_consistency_proof_verifies_and_a_forked_history_does_not(size: int, seed: int) -> None:
    leaves = _tree(size, seed)
    frontier, roots = MerkleFrontier(), [merkle_root([])]
    for leaf in leaves:
        frontier.append(leaf)
        roots.append(frontier.root())
    assert roots[-1] == _reference_root(leaves)
    for old in range(1, size + 1):
        proof = consistency_proof(leaves, old)
        assert verify_consistency(old, size, roots[old], roots[size], proof)
        # A history rewritten inside the old tree: its root at the old size cannot be proven a prefix.
        forked = merkle_root([_h(b"forged"), *leaves[1:old]])
        assert not verify_consistency(old, size, forked, roots[size], proof)
        if old < size:
            assert not verify_consistency(old, size, roots[old], _h(b"other"), proof)
            assert not verify_consistency(old, size, roots[old], roots[size], [_h(b"x"), *proof[1:]])


# --- checkpoints --------------------------------------------------------------------------------------------


def test_checkpoint_is_ed25519_over_the_documented_body() -> None:
    leaves = _leaves(_entries(10))
    checkpoint = sign_checkpoint(KEY, leaves, 7, issued_at=datetime(2026, 3, 2, 9, 15, 30, 999, tzinfo=UTC))
    root = merkle_root(leaves[:7])
    assert checkpoint.tree_size == 7 and checkpoint.last_sequence == 6
    assert checkpoint.root_hash == root.hex()
    assert checkpoint.issued_at == datetime(2026, 3, 2, 9, 15, 30, tzinfo=UTC)
    body = f"sailo-audit\n7\n{base64.b64encode(root).decode()}\n2026-03-02T09:15:30Z\n".encode()
    assert checkpoint_body(7, root, checkpoint.issued_at) == body
    # What an auditor's own tool does: the raw public key, the body and the signature.
    raw = KEY.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert checkpoint.key_id == key_id(KEY.public_key()) == hashlib.sha256(raw).hexdigest()[:8]
    KEY.public_key().verify(base64.b64decode(checkpoint.signature), body)
    assert verify_checkpoint(KEY.public_key(), checkpoint)
    assert sign_checkpoint(KEY, root, 7, issued_at=checkpoint.issued_at) == checkpoint


def test_checkpoint_with_the_wrong_key_is_refused() -> None:
    checkpoint = sign_checkpoint(KEY, _leaves(_entries(3)), issued_at=T0)
    assert not verify_checkpoint(OTHER_KEY.public_key(), checkpoint)
    # Naming the other key does not help: the signature is still not its.
    renamed = checkpoint.model_copy(update={"key_id": key_id(OTHER_KEY.public_key())})
    assert not verify_checkpoint(OTHER_KEY.public_key(), renamed)


@pytest.mark.parametrize(
    "change",
    [{"tree_size": 2, "last_sequence": 1}, {"root_hash": "00" * 32}, {"issued_at": T0 + timedelta(days=1)}],
)
def test_checkpoint_with_a_changed_field_is_refused(change: dict[str, Any]) -> None:
    checkpoint = sign_checkpoint(KEY, _leaves(_entries(3)), issued_at=T0)
    changed = Checkpoint.model_validate({**checkpoint.model_dump(), **change})
    assert not verify_checkpoint(KEY.public_key(), changed)


def test_checkpoint_refuses_fields_outside_the_signature_that_disagree() -> None:
    checkpoint = sign_checkpoint(KEY, _leaves(_entries(3)), issued_at=T0).model_dump()
    with pytest.raises(ValidationError):
        Checkpoint.model_validate({**checkpoint, "last_sequence": 5})
    with pytest.raises(ValidationError):
        Checkpoint.model_validate({**checkpoint, "issued_at": T0 + timedelta(microseconds=5)})


# --- verification -------------------------------------------------------------------------------------------


def _verify(entries: list[Any], checkpoints: list[Checkpoint]) -> tuple[int | None, Problem | None]:
    report = verify_stream(entries, checkpoints, KEY.public_key())
    assert report.ok is (report.problem is None)
    return report.first_bad_position, report.problem


def test_an_intact_stream_of_1000_with_checkpoints_every_100_verifies() -> None:
    entries = _entries(1000)
    checkpoints = _checkpoints(entries, 100)
    report = verify_stream(entries, checkpoints, KEY.public_key())
    assert report.ok and report.checked == 1000 and report.verified_size == 1000
    assert report.first_bad_position is None and report.problem is None
    assert verify_stream(_events(1000), reversed(checkpoints), [OTHER_KEY.public_key(), KEY.public_key()]).ok


@pytest.mark.parametrize("field", ["sequence", "occurred_at", "actor", "outcome", "prev_hash", "entry_hash"])
@pytest.mark.parametrize("position", [0, 437, 999])
def test_a_modified_entry_is_found_at_its_position(field: str, position: int) -> None:
    entries = _entries(1000)
    changed = {"sequence": 5, "occurred_at": "2026-03-01T00:00:00Z", "outcome": "denied"}
    entries[position][field] = changed.get(field, "ab" * 32)
    assert _verify(entries, _checkpoints(_entries(1000), 100)) == (position, Problem.ENTRY_MODIFIED)


@pytest.mark.parametrize("position", [0, 437, 998])
def test_a_removed_entry_is_found_at_its_position(position: int) -> None:
    entries = _entries(1000)
    del entries[position]
    assert _verify(entries, _checkpoints(_entries(1000), 100)) == (position, Problem.SEQUENCE_GAP)


@pytest.mark.parametrize("position", [0, 437, 998])
def test_two_swapped_entries_are_found_at_the_first(position: int) -> None:
    entries = _entries(1000)
    entries[position], entries[position + 1] = entries[position + 1], entries[position]
    assert _verify(entries, _checkpoints(_entries(1000), 100)) == (position, Problem.SEQUENCE_GAP)


@pytest.mark.parametrize("position", [0, 437, 999])
def test_an_inserted_entry_with_a_correct_own_hash_is_found(position: int) -> None:
    entries = _entries(1000)
    checkpoints = _checkpoints(entries, 100)
    before = [*entries[:position], _forged(entries, position), *entries[position:]]
    assert _verify(before, checkpoints) == (position, Problem.ENTRY_INSERTED)
    after = [*entries[: position + 1], _forged(entries, position), *entries[position + 1 :]]
    assert _verify(after, checkpoints) == (position + 1, Problem.ENTRY_INSERTED)


def test_inserted_entries_that_do_not_fit_the_chain_are_found_where_they_are() -> None:
    entries = _entries(50)
    unlinked = _rehash({**_forged(entries, 20), "prev_hash": "ab" * 32})
    assert _verify([*entries[:20], unlinked, *entries[20:]], []) == (20, Problem.CHAIN_BROKEN)
    renumbered = _rehash({**_forged(entries, 20), "sequence": 70})
    assert _verify([*entries[:20], renumbered, *entries[20:]], []) == (20, Problem.SEQUENCE_GAP)
    older = _rehash({**_forged(entries, 5)})
    assert _verify([*entries[:20], older, *entries[20:]], []) == (20, Problem.SEQUENCE_REPEATED)


def test_a_truncated_tail_is_found_when_a_checkpoint_covers_it() -> None:
    entries = _entries(1000)
    assert _verify(entries[:950], _checkpoints(entries, 100)) == (950, Problem.ENTRIES_MISSING)
    # Without a checkpoint over the lost entries the stream is consistent; verified_size shows what is signed.
    report = verify_stream(entries[:950], _checkpoints(entries[:900], 100), KEY.public_key())
    assert report.ok and report.checked == 950 and report.verified_size == 900


def test_a_rewritten_tail_is_found_by_the_signed_checkpoint() -> None:
    checkpoints = _checkpoints(_entries(1000), 100)
    rewritten = _rewrite_tail(_entries(1000), 300)
    assert verify_stream(rewritten).ok  # the chain alone is fooled: only the signatures pin history
    assert _verify(rewritten, checkpoints) == (300, Problem.CHECKPOINT_ROOT)
    # Inside a checkpoint interval the root locates the change to the interval, not the entry.
    report = verify_stream(_rewrite_tail(_entries(1000), 250), checkpoints, KEY.public_key())
    assert (report.first_bad_position, report.problem) == (200, Problem.CHECKPOINT_ROOT)
    assert report.detail == "sequences 200..299 differ from what checkpoint 300 signed"
    assert report.verified_size == 200


def test_checkpoints_forged_for_a_rewritten_tail_are_refused() -> None:
    rewritten = _rewrite_tail(_entries(1000), 300)
    forged = _checkpoints(rewritten, 100, key=OTHER_KEY)
    report = verify_stream(rewritten, forged, KEY.public_key())
    assert (report.ok, report.problem) == (False, Problem.CHECKPOINT_UNKNOWN_KEY)
    renamed = [cp.model_copy(update={"key_id": key_id(KEY.public_key())}) for cp in forged]
    report = verify_stream(rewritten, renamed, KEY.public_key())
    assert (report.ok, report.problem) == (False, Problem.CHECKPOINT_SIGNATURE)
    report = verify_stream(rewritten, _checkpoints(rewritten, 100))
    assert (report.ok, report.problem) == (False, Problem.CHECKPOINT_NO_KEY)


def test_redelivered_entries_are_skipped_and_counted() -> None:
    entries = _entries(300)
    report = verify_stream([*entries[:200], *entries[190:]], _checkpoints(entries, 100), KEY.public_key())
    assert report.ok and report.duplicates == 10 and report.checked == 310 and report.verified_size == 300


def test_malformed_entries_are_reported_at_their_position() -> None:
    entries: list[Any] = _entries(10)
    assert _verify([*entries[:4], "not an entry", *entries[4:]], []) == (4, Problem.ENTRY_MALFORMED)
    extra = _rehash({**entries[4], "caller_name": "Maija"})
    assert _verify([*entries[:4], extra, *entries[5:]], []) == (4, Problem.ENTRY_MALFORMED)


_FIELDS = sorted(_entries(1)[0])
_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 2000),
    st.text(max_size=12),
    st.sampled_from([GENESIS_HASH, "success", "denied", "read", "2026-03-02T07:00:00Z"]),
    st.lists(st.text(max_size=8), max_size=2),
)


@settings(max_examples=200, deadline=None)
@given(data=st.data(), size=st.integers(1, 60), field=st.sampled_from(_FIELDS), value=_VALUES)
def test_any_single_field_modification_is_found_at_its_position(
    data: st.DataObject, size: int, field: str, value: Any
) -> None:
    entries = _entries(size)
    position = data.draw(st.integers(0, size - 1))
    checkpoints = _checkpoints(entries, 10)
    if entries[position][field] == value:
        value = None if value is not None else "x"
    entries[position][field] = value
    assert _verify(entries, checkpoints) == (position, Problem.ENTRY_MODIFIED)


@settings(max_examples=200, deadline=None)
@given(data=st.data(), size=st.integers(2, 60), kind=st.sampled_from(["remove", "swap", "insert", "append"]))
def test_any_removal_swap_or_insertion_is_found_at_its_position(
    data: st.DataObject, size: int, kind: str
) -> None:
    entries = _entries(size)
    checkpoints = _checkpoints(entries, 10)
    k = data.draw(st.integers(0, size - (2 if kind == "swap" else 1)))
    if kind == "remove":
        expected = (k, Problem.SEQUENCE_GAP if k < size - 1 else Problem.ENTRIES_MISSING)
        del entries[k]
    elif kind == "swap":
        expected = (k, Problem.SEQUENCE_GAP)
        entries[k], entries[k + 1] = entries[k + 1], entries[k]
    elif kind == "insert":  # forged entry before the one whose place it takes
        expected = (k, Problem.ENTRY_INSERTED)
        entries.insert(k, _forged(entries, k))
    else:  # forged entry right after the one whose place it claims
        expected = (k + 1, Problem.ENTRY_INSERTED)
        entries.insert(k + 1, _forged(entries, k))
    assert _verify(entries, checkpoints) == expected


@settings(max_examples=100, deadline=None)
@given(data=st.data(), size=st.integers(1, 60))
def test_a_rewritten_tail_is_located_to_its_checkpoint_interval(data: st.DataObject, size: int) -> None:
    checkpoints = _checkpoints(_entries(size), 10)
    start = data.draw(st.integers(0, size - 1))
    assert _verify(_rewrite_tail(_entries(size), start), checkpoints) == (
        start // 10 * 10,
        Problem.CHECKPOINT_ROOT,
    )


def _write_pem(path: Path, key: Ed25519PrivateKey) -> Path:
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    path.write_bytes(pem)
    return path


def _write_topic_dump(path: Path, entries: list[Any], checkpoints: list[Checkpoint]) -> Path:
    """Entries and checkpoints interleaved as the topic holds them: a checkpoint after the entries it covers."""
    by_size = {checkpoint.tree_size: checkpoint for checkpoint in checkpoints}
    lines = []
    for i, entry in enumerate(entries):
        lines.append(entry if isinstance(entry, str) else json.dumps(entry))
        if i + 1 in by_size:
            lines.append(json.dumps({"checkpoint": by_size[i + 1].model_dump(mode="json")}))
    path.write_text("\n".join(lines) + "\n\n")
    return path


def test_verify_file_reads_a_topic_dump_with_checkpoints_and_rotated_keys(tmp_path: Path) -> None:
    entries = _entries(500)
    old_key, new_key = _write_pem(tmp_path / "old.pem", KEY), _write_pem(tmp_path / "new.pem", OTHER_KEY)
    checkpoints = [*_checkpoints(entries[:300], 100), *_checkpoints(entries, 100, key=OTHER_KEY)[3:]]
    dump = _write_topic_dump(tmp_path / "audit.jsonl", entries, checkpoints)
    report = verify_file(dump, [old_key, new_key])
    assert report.ok and report.checked == 500 and report.verified_size == 500
    assert verify_file(dump, str(old_key)).problem is Problem.CHECKPOINT_UNKNOWN_KEY
    assert verify_file(dump).problem is Problem.CHECKPOINT_NO_KEY


def test_verify_file_reports_tampered_and_garbled_lines(tmp_path: Path) -> None:
    entries: list[Any] = _entries(200)
    key = _write_pem(tmp_path / "audit-public.pem", KEY)
    checkpoints = _checkpoints(entries, 100)
    entries[150] = {**entries[150], "outcome": "denied"}
    report = verify_file(_write_topic_dump(tmp_path / "a.jsonl", entries, checkpoints), key)
    assert (report.first_bad_position, report.problem) == (150, Problem.ENTRY_MODIFIED)
    entries[150] = '{"sequence": 150, '
    report = verify_file(_write_topic_dump(tmp_path / "b.jsonl", entries, checkpoints), key)
    assert (report.first_bad_position, report.problem) == (150, Problem.ENTRY_MALFORMED)


def test_sailo_audit_verify_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """What an auditor runs on a dump of the audit topic: exit 0 when intact, 1 and the position when not."""
    from deploy.cli.main import main

    events = _events(1000)[:150]
    checkpoint = sign_checkpoint(KEY, [e.leaf for e in events[:100]], issued_at=T0)
    lines = [e.model_dump_json() for e in events[:100]]
    lines.append(orjson.dumps({"checkpoint": checkpoint.model_dump(mode="json")}).decode())
    lines += [e.model_dump_json() for e in events[100:]]
    pem = tmp_path / "audit-public.pem"
    pem.write_bytes(
        KEY.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    dump = tmp_path / "audit.jsonl"
    dump.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert main(["audit", "verify", str(dump), "--public-key", str(pem)]) == 0
    assert "150 entries checked" in capsys.readouterr().out

    tampered = [orjson.loads(line) for line in lines]
    tampered[42]["outcome"] = "denied"
    dump.write_text("\n".join(orjson.dumps(t).decode() for t in tampered) + "\n", encoding="utf-8")
    assert main(["audit", "verify", str(dump), "--public-key", str(pem)]) == 1
    assert "position 42" in capsys.readouterr().err
