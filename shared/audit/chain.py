"""Tamper-evident audit log: entries without personal data, a hash chain, a Merkle tree and signed checkpoints.

Every read, listen, change, deletion, disclosure and data-subject-request step becomes one :class:`AuditEvent`.
An entry names who acted only by a pseudonymous id and what was touched only by pseudonymous ids; every other
field is an enum or a short code, so no personal data or free text can enter the log.

Three layers make tampering evident, each checkable by an auditor with their own tools (see docs/audit.md):

1. Hash chain. ``entry_hash = SHA-256(canonical bytes)``, where the canonical bytes are the entry as a JSON
   object without ``entry_hash``, keys sorted, no whitespace. Each entry carries the previous entry's hash in
   ``prev_hash`` (64 zeros for sequence 0), so changing, removing, reordering or inserting an entry shows.
2. Merkle tree (RFC 6962 / RFC 9162): the leaves are the 32 raw bytes of each ``entry_hash`` in sequence
   order. Inclusion and consistency proofs let an auditor check one entry, or that a log only grew.
3. Signed checkpoints: Ed25519 over ``tree_size`` and root at intervals. A chain alone can be recomputed by
   whoever can write the log; a checkpoint cannot be forged without the private key, so it pins the history.

This module is pure: it reads the clock nowhere and does no I/O except :func:`verify_file` reading its files.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Final
from uuid import UUID, uuid4

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

__all__ = [
    "CHECKPOINT_ORIGIN",
    "GENESIS_HASH",
    "Action",
    "AuditChain",
    "AuditEvent",
    "Checkpoint",
    "MerkleFrontier",
    "Outcome",
    "Problem",
    "VerifyReport",
    "canonical_bytes",
    "chain",
    "checkpoint_body",
    "consistency_proof",
    "inclusion_proof",
    "key_id",
    "load_public_key",
    "merkle_root",
    "sign_checkpoint",
    "validate_fields",
    "verify_checkpoint",
    "verify_consistency",
    "verify_file",
    "verify_inclusion",
    "verify_stream",
]

GENESIS_HASH: Final = "0" * 64
"""``prev_hash`` of the entry at sequence 0."""
CHECKPOINT_ORIGIN: Final = "sailo-audit"
"""First line of every signed checkpoint body: names the log, as a transparency-log checkpoint does."""
MAX_OBJECT_IDS: Final = 1000
"""Object ids per entry; a bigger batch (an export) is logged as several steps."""
DUPLICATE_WINDOW: Final = 10_000
"""How far back :func:`verify_stream` recognises an exact re-delivery of an entry."""

# Lower-case canonical form only: accepting "ABC…" or "{…}" would give one id two spellings, and a hash over
# one spelling would not match the other.
Pseudonym = Annotated[str, Field(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
Code = Annotated[str, Field(pattern=r"^[a-z0-9_.-]{1,64}$")]
HexDigest = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class Action(StrEnum):
    """What was done. Values are part of the hashed entry: never rename one, only add."""

    READ = "read"
    SEARCH = "search"
    LISTEN = "listen"
    CREATE = "create"
    CHANGE = "change"
    DELETE = "delete"
    REDACT = "redact"
    DISCLOSE = "disclose"
    HOLD_PLACED = "hold_placed"
    HOLD_LIFTED = "hold_lifted"
    POLICY_CHANGED = "policy_changed"
    DSR_STEP = "dsr_step"
    EXPORT_STEP = "export_step"
    LOGIN_REFUSED = "login_refused"


class Outcome(StrEnum):
    """How the attempt ended: refused attempts are logged as well as successful ones."""

    SUCCESS = "success"
    DENIED = "denied"
    FAILED = "failed"


class _Fields(BaseModel):
    # No str_strip_whitespace or other normalisation: the hash covers the exact published form, so the
    # model must refuse what it would otherwise silently rewrite.
    model_config = ConfigDict(frozen=True, extra="forbid")

    sequence: Annotated[int, Field(ge=0)]
    event_id: UUID = Field(default_factory=uuid4)
    occurred_at: AwareDatetime
    actor: Pseudonym
    role: Code
    action: Action
    object_type: Code
    object_ids: Annotated[tuple[Pseudonym, ...], Field(max_length=MAX_OBJECT_IDS)] = ()
    outcome: Outcome
    reason: Code | None = None
    service: Code
    prev_hash: HexDigest


class AuditEvent(_Fields):
    """One audit entry: who (pseudonymous ``actor`` and ``role``) did what (``action``) to which objects
    (``object_type``, pseudonymous ``object_ids``), when, with which ``outcome`` and ``reason`` code, in which
    ``service``; ``sequence`` is its position in the stream.

    Build entries with :class:`AuditChain` (or :func:`chain`): the model refuses an ``entry_hash`` that does
    not match its canonical bytes, so an ``AuditEvent`` object is always internally consistent.
    """

    entry_hash: HexDigest

    @model_validator(mode="after")
    def _hash_matches(self) -> AuditEvent:
        if self.entry_hash != hashlib.sha256(self.canonical_bytes()).hexdigest():
            raise ValueError("entry_hash does not match the entry")
        return self

    def canonical_bytes(self) -> bytes:
        """The bytes ``entry_hash`` is the SHA-256 of; see :func:`canonical_bytes`."""
        return canonical_bytes(self.model_dump(mode="json"))

    @property
    def leaf(self) -> bytes:
        """The entry's Merkle leaf: the 32 raw bytes of ``entry_hash``."""
        return bytes.fromhex(self.entry_hash)


def canonical_bytes(entry: Mapping[str, Any]) -> bytes:
    """Canonical bytes of a JSON-decoded entry: every field but ``entry_hash``, keys sorted, compact UTF-8.

    Equal to Python's ``json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`` for
    entries this module makes, so an auditor can recompute hashes without this code.
    """
    return orjson.dumps({k: v for k, v in entry.items() if k != "entry_hash"}, option=orjson.OPT_SORT_KEYS)


class AuditChain:
    """Assigns ``sequence``, ``prev_hash`` and ``entry_hash`` to new entries, in order.

    Start from genesis, or resume after the last stored entry with ``last=(sequence, entry_hash)``. One chain
    must have one writer at a time: two builders resuming from the same entry would fork the log.
    """

    def __init__(self, last: tuple[int, str] | None = None) -> None:
        if last is None:
            self._next, self._prev = 0, GENESIS_HASH
        else:
            sequence, entry_hash = last
            if sequence < 0 or len(entry_hash) != 64 or entry_hash.strip("0123456789abcdef"):
                raise ValueError("last must be (sequence >= 0, lower-case hex sha256)")
            self._next, self._prev = sequence + 1, entry_hash

    @property
    def last(self) -> tuple[int, str] | None:
        """``(sequence, entry_hash)`` of the latest entry, to resume from; None before the first."""
        return None if self._next == 0 else (self._next - 1, self._prev)

    def append(self, **fields: Any) -> AuditEvent:
        """Validate ``fields`` (all :class:`AuditEvent` fields but the three it assigns) and chain the entry."""
        if assigned := {"sequence", "prev_hash", "entry_hash"} & fields.keys():
            raise TypeError(f"the chain assigns {sorted(assigned)} itself")
        body = _Fields(sequence=self._next, prev_hash=self._prev, **fields).model_dump(mode="json")
        event = AuditEvent(**body, entry_hash=hashlib.sha256(canonical_bytes(body)).hexdigest())
        self._next, self._prev = event.sequence + 1, event.entry_hash
        return event


def validate_fields(**fields: Any) -> dict[str, Any]:
    """Check an entry's own fields (all but ``sequence``, ``prev_hash`` and ``entry_hash``) by the rules
    :meth:`AuditChain.append` applies, and return their JSON form; ``event_id`` is drawn if not given.

    For writers that queue an entry to be chained later: what passes here passes the chain. Raises pydantic's
    ValidationError (a ValueError), whose text quotes the refused input: report its ``errors()`` locations.
    """
    if assigned := {"sequence", "prev_hash", "entry_hash"} & fields.keys():
        raise TypeError(f"the chain assigns {sorted(assigned)} itself")
    body = _Fields(sequence=0, prev_hash=GENESIS_HASH, **fields).model_dump(mode="json")
    del body["sequence"], body["prev_hash"]
    return body


def chain(records: Iterable[Mapping[str, Any]], *, last: tuple[int, str] | None = None) -> list[AuditEvent]:
    """Chain entries given without ``sequence``/``prev_hash``/``entry_hash``; see :class:`AuditChain`."""
    builder = AuditChain(last)
    return [builder.append(**record) for record in records]


# --- Merkle tree (RFC 6962 §2.1, verification as in RFC 9162 §2.1.3.2 and §2.1.4.2) -------------------------


def _leaf_hash(leaf: bytes) -> bytes:
    # The 0x00 / 0x01 prefixes keep a leaf from ever passing for an inner node (second-preimage resistance).
    return hashlib.sha256(b"\x00" + leaf).digest()


def _node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def _subtree(hashes: Sequence[bytes], lo: int, hi: int) -> bytes:
    """MTH of the leaf hashes ``hashes[lo:hi]`` (non-empty), by the RFC 6962 recursion."""
    if hi - lo == 1:
        return hashes[lo]
    k = _split(hi - lo)
    return _node_hash(_subtree(hashes, lo, lo + k), _subtree(hashes, lo + k, hi))


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """RFC 6962 Merkle Tree Hash of ``leaves`` (raw leaf data, here entry hashes); SHA-256(b"") if empty."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    return _subtree([_leaf_hash(leaf) for leaf in leaves], 0, len(leaves))


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """RFC 6962 audit path of ``leaves[index]`` in the tree of all ``leaves``."""
    if not 0 <= index < len(leaves):
        raise IndexError("leaf index outside the tree")
    hashes = [_leaf_hash(leaf) for leaf in leaves]

    def path(m: int, lo: int, hi: int) -> list[bytes]:
        if hi - lo == 1:
            return []
        k = _split(hi - lo)
        if m < k:
            return [*path(m, lo, lo + k), _subtree(hashes, lo + k, hi)]
        return [*path(m - k, lo + k, hi), _subtree(hashes, lo, lo + k)]

    return path(index, 0, len(hashes))


def verify_inclusion(leaf: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes) -> bool:
    """True if ``proof`` shows ``leaf`` (raw leaf data) at ``index`` in the tree of ``tree_size`` with ``root``."""
    if not 0 <= index < tree_size:
        return False
    fn, sn, r = index, tree_size - 1, _leaf_hash(leaf)
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = _node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = _node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def consistency_proof(leaves: Sequence[bytes], old_size: int) -> list[bytes]:
    """RFC 6962 proof that the tree of the first ``old_size`` leaves is a prefix of the tree of all ``leaves``."""
    if not 1 <= old_size <= len(leaves):
        raise ValueError("old_size must be between 1 and the number of leaves")
    hashes = [_leaf_hash(leaf) for leaf in leaves]

    def subproof(m: int, lo: int, hi: int, complete: bool) -> list[bytes]:
        if m == hi - lo:
            # A subtree the old tree holds whole: the verifier knows it only if it is the old root itself.
            return [] if complete else [_subtree(hashes, lo, hi)]
        k = _split(hi - lo)
        if m <= k:
            return [*subproof(m, lo, lo + k, complete), _subtree(hashes, lo + k, hi)]
        return [*subproof(m - k, lo + k, hi, False), _subtree(hashes, lo, lo + k)]

    return subproof(old_size, 0, len(hashes), True)


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """True if ``proof`` shows the tree (``old_size``, ``old_root``) is a prefix of (``new_size``, ``new_root``)."""
    if not 1 <= old_size <= new_size:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is a node of the new tree, not sent
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = _node_hash(c, fr), _node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = _node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and fr == old_root and sr == new_root


class MerkleFrontier:
    """Incremental RFC 6962 root: keeps only the roots of the complete subtrees (O(log n) memory), so a
    stream of any length can be checked against checkpoints without holding its leaves."""

    def __init__(self) -> None:
        self._size = 0
        self._stack: list[bytes] = []  # complete subtree roots, largest (leftmost) first

    @property
    def size(self) -> int:
        return self._size

    def append(self, leaf: bytes) -> None:
        """Add the next leaf (raw leaf data)."""
        node, size = _leaf_hash(leaf), self._size
        while size & 1:  # each trailing 1 bit of the old size is a complete subtree the new leaf completes
            node, size = _node_hash(self._stack.pop(), node), size >> 1
        self._stack.append(node)
        self._size += 1

    @property
    def nodes(self) -> tuple[bytes, ...]:
        """The roots of the complete subtrees, largest first: with :attr:`size`, all a frontier needs to be
        stored and resumed (:meth:`restore`)."""
        return tuple(self._stack)

    @classmethod
    def restore(cls, size: int, nodes: Sequence[bytes]) -> MerkleFrontier:
        """The frontier of ``size`` leaves from its stored :attr:`nodes`; ValueError if they cannot be one."""
        # One complete subtree per 1 bit of the size: anything else is not the frontier of that many leaves.
        if size < 0 or len(nodes) != size.bit_count() or any(len(node) != 32 for node in nodes):
            raise ValueError("not a Merkle frontier: one 32-byte node per 1 bit of the size")
        frontier = cls()
        frontier._size, frontier._stack = size, [bytes(node) for node in nodes]
        return frontier

    def copy(self) -> MerkleFrontier:
        """An independent frontier in the same state."""
        other = MerkleFrontier()
        other._size, other._stack = self._size, list(self._stack)
        return other

    def root(self) -> bytes:
        """The Merkle Tree Hash of the leaves appended so far."""
        if not self._stack:
            return hashlib.sha256(b"").digest()
        node = self._stack[-1]
        for left in reversed(self._stack[:-1]):
            node = _node_hash(left, node)
        return node


# --- Signed checkpoints -------------------------------------------------------------------------------------


class Checkpoint(BaseModel):
    """A signed commitment to the first ``tree_size`` entries (sequences 0 … ``last_sequence``).

    ``signature`` is Ed25519 over :func:`checkpoint_body`; ``key_id`` names the signing key (:func:`key_id`).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    tree_size: Annotated[int, Field(ge=1)]
    root_hash: HexDigest
    last_sequence: Annotated[int, Field(ge=0)]
    issued_at: AwareDatetime
    key_id: Annotated[str, Field(pattern=r"^[0-9a-f]{8}$")]
    signature: Annotated[str, Field(pattern=r"^[A-Za-z0-9+/]{85}[AQgw]==$")]  # exactly 64 bytes, one spelling

    @model_validator(mode="after")
    def _consistent(self) -> Checkpoint:
        # last_sequence and sub-second time are not in the signed body; pinning them keeps them unforgeable.
        if self.last_sequence != self.tree_size - 1:
            raise ValueError("last_sequence must be tree_size - 1: the tree starts at sequence 0")
        if self.issued_at.microsecond:
            raise ValueError("issued_at is whole seconds")
        return self


def checkpoint_body(tree_size: int, root: bytes, issued_at: datetime) -> bytes:
    """The signed text, a transparency-log checkpoint body plus one extension line with the time::

    sailo-audit\\n{tree_size}\\n{base64 root}\\n{issued_at as YYYY-MM-DDTHH:MM:SSZ}\\n
    """
    stamp = issued_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{CHECKPOINT_ORIGIN}\n{tree_size}\n{base64.b64encode(root).decode()}\n{stamp}\n".encode()


def key_id(public_key: Ed25519PublicKey) -> str:
    """First 8 hex characters of SHA-256 over the 32 raw public key bytes."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:8]


def sign_checkpoint(
    private_key: Ed25519PrivateKey,
    leaves_or_root: bytes | Sequence[bytes],
    tree_size: int | None = None,
    *,
    issued_at: datetime,
) -> Checkpoint:
    """Sign the tree of the first ``tree_size`` leaves, or a 32-byte root computed elsewhere.

    With leaves, ``tree_size`` defaults to all of them; with a root it is required. ``issued_at`` is cut to
    whole seconds.
    """
    if isinstance(leaves_or_root, bytes | bytearray):
        if tree_size is None or len(leaves_or_root) != 32:
            raise ValueError("a root is 32 bytes and needs its tree_size")
        root = bytes(leaves_or_root)
    else:
        tree_size = len(leaves_or_root) if tree_size is None else tree_size
        if not 1 <= tree_size <= len(leaves_or_root):
            raise ValueError("tree_size must be between 1 and the number of leaves")
        root = merkle_root(leaves_or_root[:tree_size])
    if issued_at.tzinfo is None:
        raise ValueError("issued_at must be timezone-aware")
    issued_at = issued_at.astimezone(UTC).replace(microsecond=0)
    signature = private_key.sign(checkpoint_body(tree_size, root, issued_at))
    return Checkpoint(
        tree_size=tree_size,
        root_hash=root.hex(),
        last_sequence=tree_size - 1,
        issued_at=issued_at,
        key_id=key_id(private_key.public_key()),
        signature=base64.b64encode(signature).decode(),
    )


def verify_checkpoint(public_key: Ed25519PublicKey, checkpoint: Checkpoint) -> bool:
    """True if ``checkpoint`` was signed by ``public_key`` and names it in ``key_id``."""
    if checkpoint.key_id != key_id(public_key):
        return False
    body = checkpoint_body(checkpoint.tree_size, bytes.fromhex(checkpoint.root_hash), checkpoint.issued_at)
    try:
        public_key.verify(base64.b64decode(checkpoint.signature), body)
    except InvalidSignature:
        return False
    return True


def load_public_key(pem: bytes) -> Ed25519PublicKey:
    """Load an Ed25519 public key from PEM (SubjectPublicKeyInfo); ValueError for any other key type."""
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("the audit public key must be an Ed25519 key")
    return key


# --- Verification -------------------------------------------------------------------------------------------


class Problem(StrEnum):
    """What :func:`verify_stream` found; fixed texts, safe to show and to compare."""

    ENTRY_MALFORMED = "entry malformed"
    ENTRY_MODIFIED = "entry modified"
    SEQUENCE_GAP = "entry removed or reordered (sequence gap)"
    SEQUENCE_REPEATED = "sequence repeated"
    ENTRY_INSERTED = "entry inserted"
    CHAIN_BROKEN = "chain broken (prev_hash)"
    ENTRIES_MISSING = "entries missing (checkpoint covers more entries than present)"
    CHECKPOINT_MALFORMED = "checkpoint malformed"
    CHECKPOINT_NO_KEY = "checkpoint signature not checked (no public key)"
    CHECKPOINT_UNKNOWN_KEY = "checkpoint signed by an unknown key"
    CHECKPOINT_SIGNATURE = "checkpoint signature invalid"
    CHECKPOINT_ROOT = "checkpoint root does not match entries"


class VerifyReport(BaseModel):
    """Outcome of :func:`verify_stream`.

    Positions count the entries in the order read (checkpoint lines excluded) from 0; in an intact stream
    without re-deliveries an entry's position is its sequence. ``verified_size`` is how many entries signed
    checkpoints vouch for: entries after it are protected by the hash chain only, which whoever can write
    the log can recompute.
    """

    model_config = ConfigDict(frozen=True)

    ok: bool
    checked: int  # entries read when verification ended
    first_bad_position: int | None = None
    problem: Problem | None = None
    detail: str | None = None  # sequence numbers and sizes only, never entry contents
    verified_size: int = 0
    duplicates: int = 0  # exact re-deliveries skipped (an at-least-once publisher may repeat entries)


class _Verifier:
    def __init__(self, checkpoints: dict[int, list[Checkpoint]]) -> None:
        self.due = checkpoints  # tree_size -> checkpoints still to compare
        self.frontier = MerkleFrontier()
        self.before_last = MerkleFrontier()  # the frontier before the latest entry, to weigh a fork
        self.recent: dict[int, str] = {}  # sequence -> entry_hash of the last DUPLICATE_WINDOW entries
        self.prev_hash = self.prev_prev_hash = GENESIS_HASH
        self.prev_position = -1
        # A second entry claiming the previous entry's sequence and predecessor, kept until the next entry or
        # a checkpoint shows which of the two belongs: the other one is the inserted entry.
        self.fork: tuple[int, AuditEvent] | None = None
        self.read = self.duplicates = self.verified_size = self.unverified_from = 0

    def fail(self, position: int | None, problem: Problem, detail: str | None = None) -> VerifyReport:
        return VerifyReport(
            ok=False,
            checked=self.read,
            first_bad_position=position,
            problem=problem,
            detail=detail,
            verified_size=self.verified_size,
            duplicates=self.duplicates,
        )

    def run(self, entries: Iterable[Any]) -> VerifyReport:
        for position, raw in enumerate(entries):
            self.read += 1
            event, finding = self.inspect(position, raw)
            # A checkpoint at the current size covers earlier positions, so it is compared before a finding at
            # this one is reported. Not while a fork is open or for an insertion, though: those name an exact
            # earlier position, and a checkpoint mismatch only names the range it covers.
            exact = self.fork is not None or (
                finding is not None and finding.problem is Problem.ENTRY_INSERTED
            )
            if not exact:
                finding = self.check_due() or finding
            if finding is not None:
                return finding
            if event is not None:
                self.accept(position, event)
        if self.fork is not None:  # before check_due, which would consume the checkpoint that can decide it
            finding = self.resolve_fork(*self.fork, None)
            return finding if finding.problem is Problem.ENTRY_INSERTED else self.check_due() or finding
        if (finding := self.check_due()) is not None:
            return finding
        if self.due:
            detail = f"checkpoint tree_size {max(self.due)}, entries {self.frontier.size}"
            return self.fail(self.read, Problem.ENTRIES_MISSING, detail)
        return VerifyReport(
            ok=True, checked=self.read, verified_size=self.verified_size, duplicates=self.duplicates
        )

    def parse(self, position: int, raw: Any) -> tuple[AuditEvent | None, VerifyReport | None]:
        if isinstance(raw, AuditEvent):
            raw = raw.model_dump(mode="json")
        if not isinstance(raw, dict):
            return None, self.fail(position, Problem.ENTRY_MALFORMED)
        try:
            digest = hashlib.sha256(canonical_bytes(raw)).hexdigest()
        except TypeError:  # orjson.JSONEncodeError: a value no JSON line can hold
            return None, self.fail(position, Problem.ENTRY_MALFORMED)
        # The hash first: any changed byte is "modified", whatever else it breaks, the hash itself included.
        if digest != raw.get("entry_hash"):
            return None, self.fail(position, Problem.ENTRY_MODIFIED)
        try:
            return AuditEvent.model_validate(raw), None
        except ValidationError:
            return None, self.fail(position, Problem.ENTRY_MALFORMED)

    def inspect(self, position: int, raw: Any) -> tuple[AuditEvent | None, VerifyReport | None]:
        """The entry to accept or what is wrong; (None, None) for an entry to skip."""
        event, finding = self.parse(position, raw)
        expected = self.frontier.size
        if self.fork is not None:
            return None, self.resolve_fork(*self.fork, event)
        if event is None:
            return None, finding
        if event.sequence < expected and self.recent.get(event.sequence) == event.entry_hash:
            self.duplicates += 1
            return None, None
        if event.sequence > expected:
            detail = f"expected sequence {expected}, found {event.sequence}"
            return None, self.fail(position, Problem.SEQUENCE_GAP, detail)
        if event.sequence < expected:
            if event.sequence == expected - 1 and event.prev_hash == self.prev_prev_hash:
                self.fork = (position, event)
                return None, None
            detail = f"expected sequence {expected}, found {event.sequence}"
            return None, self.fail(position, Problem.SEQUENCE_REPEATED, detail)
        if event.prev_hash != self.prev_hash:
            return None, self.fail(position, Problem.CHAIN_BROKEN, f"sequence {event.sequence}")
        return event, None

    def resolve_fork(self, position: int, second: AuditEvent, after: AuditEvent | None) -> VerifyReport:
        """Of two entries claiming one sequence, the inserted one is the one the chain does not continue
        from (``after``, the next entry) or that the checkpoint at this size did not sign."""
        self.fork = None
        size = self.frontier.size
        follows = after.prev_hash if after is not None and after.sequence == size else None
        signed = {checkpoint.root_hash for checkpoint in self.due.get(size, [])}
        alternative = self.before_last.copy()
        alternative.append(second.leaf)
        detail = f"sequence {second.sequence} appears twice; the other entry is the one that belongs"
        if follows == second.entry_hash or alternative.root().hex() in signed:
            return self.fail(self.prev_position, Problem.ENTRY_INSERTED, detail)
        if follows == self.prev_hash or self.frontier.root().hex() in signed:
            return self.fail(position, Problem.ENTRY_INSERTED, detail)
        return self.fail(position, Problem.SEQUENCE_REPEATED, f"sequence {second.sequence}")

    def accept(self, position: int, event: AuditEvent) -> None:
        self.before_last = self.frontier.copy()
        self.frontier.append(event.leaf)
        self.recent[event.sequence] = event.entry_hash
        self.recent.pop(event.sequence - DUPLICATE_WINDOW, None)
        self.prev_prev_hash, self.prev_hash = self.prev_hash, event.entry_hash
        self.prev_position = position

    def check_due(self) -> VerifyReport | None:
        size = self.frontier.size
        checkpoints = self.due.pop(size, [])
        if not checkpoints:
            return None
        root = self.frontier.root().hex()
        for checkpoint in checkpoints:
            if checkpoint.root_hash != root:
                # The root says that something in the range differs, not what: a rewritten tail (every hash
                # recomputed) is located to the range after the last checkpoint that matched.
                detail = (
                    f"sequences {self.verified_size}..{size - 1} differ from what checkpoint {size} signed"
                )
                return self.fail(self.unverified_from, Problem.CHECKPOINT_ROOT, detail)
        self.verified_size, self.unverified_from = size, self.prev_position + 1
        return None


def _key_map(public_key: Ed25519PublicKey | Iterable[Ed25519PublicKey] | None) -> dict[str, Ed25519PublicKey]:
    if public_key is None:
        return {}
    keys = [public_key] if isinstance(public_key, Ed25519PublicKey) else list(public_key)
    return {key_id(key): key for key in keys}


def verify_stream(
    entries: Iterable[Mapping[str, Any] | AuditEvent],
    checkpoints: Iterable[Checkpoint | Mapping[str, Any]] = (),
    public_key: Ed25519PublicKey | Iterable[Ed25519PublicKey] | None = None,
) -> VerifyReport:
    """Verify an audit stream from sequence 0, in the order it was read, and report the first bad position.

    Checks each entry's hash, the sequence numbers and the chain, and compares every checkpoint's root with
    the entries it covers. Checkpoint signatures are checked first, against ``public_key`` (one key, or
    several during a rotation, matched by ``key_id``); checkpoints without a key to check them fail, since an
    unchecked checkpoint proves nothing. Entries are read once and not kept, so any length fits in memory.

    A changed entry is found at its own position; a removed, swapped or inserted entry where the order or
    the chain first breaks (an inserted entry at its own position once the entry after it, or a checkpoint,
    shows it does not belong). When every hash after some entry was recomputed, only a checkpoint root can
    tell, and it tells only which interval changed: the report names the first position after the last
    matching checkpoint. Exact re-deliveries of an entry are skipped and counted (``duplicates``). Entries
    cut off after the last checkpoint go unnoticed: compare ``verified_size`` with the size you saw last.
    """
    keys = _key_map(public_key)
    by_size: dict[int, list[Checkpoint]] = {}
    for item in checkpoints:
        try:
            checkpoint = item if isinstance(item, Checkpoint) else Checkpoint.model_validate(item)
        except ValidationError:
            return VerifyReport(ok=False, checked=0, problem=Problem.CHECKPOINT_MALFORMED)
        detail = f"checkpoint tree_size {checkpoint.tree_size}, key_id {checkpoint.key_id}"
        if not keys:
            return VerifyReport(ok=False, checked=0, problem=Problem.CHECKPOINT_NO_KEY, detail=detail)
        key = keys.get(checkpoint.key_id)
        if key is None:
            return VerifyReport(ok=False, checked=0, problem=Problem.CHECKPOINT_UNKNOWN_KEY, detail=detail)
        if not verify_checkpoint(key, checkpoint):
            return VerifyReport(ok=False, checked=0, problem=Problem.CHECKPOINT_SIGNATURE, detail=detail)
        by_size.setdefault(checkpoint.tree_size, []).append(checkpoint)
    return _Verifier(by_size).run(entries)


def _checkpoint_of(line: bytes) -> tuple[bool, Any]:
    """(is a checkpoint line, decoded value); undecodable lines come back as None, to fail as entries."""
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        return False, None
    if isinstance(value, dict) and value.keys() == {"checkpoint"}:
        return True, value["checkpoint"]
    return False, value


def verify_file(
    path: str | Path, public_key: str | Path | Sequence[str | Path] | None = None
) -> VerifyReport:
    """:func:`verify_stream` over a JSON-lines file, e.g. the audit topic dumped with ``kcat -e``.

    Each line is an entry or ``{"checkpoint": {...}}``; blank lines are ignored. ``public_key`` is the path of
    a PEM public key, or several paths. The file is read twice, checkpoints first, so memory stays small.
    """
    paths = [public_key] if isinstance(public_key, str | Path) else list(public_key or ())
    keys = [load_public_key(Path(p).read_bytes()) for p in paths]
    path = Path(path)
    checkpoints: list[Any] = []
    with path.open("rb") as lines:
        for line in lines:
            is_checkpoint, value = _checkpoint_of(line)
            if is_checkpoint:
                checkpoints.append(value)
    with path.open("rb") as lines:
        decoded = (_checkpoint_of(line) for line in lines if line.strip())
        return verify_stream(
            (value for is_checkpoint, value in decoded if not is_checkpoint), checkpoints, keys
        )
