"""The audit log's storage and the API services write it with.

A service records what it did with :func:`record`, in the SAME transaction as the action: the entry lands in
``audit.outbox`` and becomes durable exactly when the action does, and a rolled-back action leaves no entry.
The relay (:mod:`shared.audit.relay`, running in every service process) then takes outbox rows in id order,
chains them (:class:`shared.audit.chain.AuditChain`) into ``audit.entries``, signs checkpoints into
``audit.checkpoints`` and publishes both, in sequence order, to the single-partition topic ``sailo.audit``.

``audit.entries`` and ``audit.checkpoints`` are append-only: triggers in the database refuse UPDATE, DELETE
and TRUNCATE, whoever asks. Nothing here can hold personal data: :func:`record` accepts only pseudonymous
UUIDs, enums and short codes, by the same rules as :class:`shared.audit.chain.AuditEvent`, and refuses anything
else with a ValueError that does not repeat the refused value.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final
from uuid import UUID

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError
from sqlalchemy import BigInteger, CheckConstraint, DateTime, SmallInteger, String, Text, func, insert
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from shared.audit.chain import MAX_OBJECT_IDS, Action, Outcome, validate_fields
from shared.platform.crypto import BlindIndex
from shared.platform.db import Base
from shared.platform.keyfiles import local_key_pair
from shared.platform.settings import Environment, Settings

__all__ = [
    "SCHEMA",
    "SYSTEM_ACTOR_NAMESPACE",
    "SYSTEM_ROLE",
    "AuditCheckpoint",
    "AuditEntry",
    "AuditOutbox",
    "AuditRelayState",
    "actor_ref",
    "load_signing_key",
    "outbox_entries",
    "public_key_pem",
    "record",
    "record_now",
    "system_actor",
]

SCHEMA: Final = "audit"
SYSTEM_ROLE: Final = "system"
"""The role of a service acting on its own behalf (a sweeper, a consumer), with :func:`system_actor`."""
SYSTEM_ACTOR_NAMESPACE: Final = uuid.UUID("5a110a0d-17a0-4c1e-8d5e-000000000000")
"""Namespace of :func:`system_actor`: ``uuid5(SYSTEM_ACTOR_NAMESPACE, service)``."""
_CODE = re.compile(r"[a-z0-9_.-]{1,64}")  # shared.audit.chain's code pattern


class AuditOutbox(Base):
    """Entries recorded but not yet chained: written by the services, emptied by the relay."""

    __tablename__ = "outbox"
    __table_args__ = {"schema": SCHEMA}

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # The entry's own fields in their JSON form (validated): everything but sequence, prev_hash, entry_hash.
    entry: Mapped[dict[str, Any]] = mapped_column(JSONB)


class AuditEntry(Base):
    """The chained log, one row per entry. Append-only: the database refuses UPDATE, DELETE and TRUNCATE."""

    __tablename__ = "entries"
    __table_args__ = (CheckConstraint("sequence >= 0", name="sequence_from_zero"), {"schema": SCHEMA})

    sequence: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    # Unique: an outbox row (its event_id is drawn when it is recorded) is chained once, whatever happens.
    event_id: Mapped[UUID] = mapped_column(unique=True)
    entry_hash: Mapped[str] = mapped_column(String(64))
    # The exact JSON line published on the topic: text, not JSONB, which would reorder and respace it.
    entry: Mapped[str] = mapped_column(Text)
    chained_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class AuditCheckpoint(Base):
    """Signed checkpoints, one per tree size. Append-only like the entries."""

    __tablename__ = "checkpoints"
    __table_args__ = {"schema": SCHEMA}

    tree_size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root_hash: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str] = mapped_column(String(8))
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # The exact JSON of the signed checkpoint; the topic carries it as {"checkpoint": <this>}.
    checkpoint: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class AuditRelayState(Base):
    """The relay's one mutable row: where chaining, signing and publishing stand.

    ``tree_size`` and ``frontier`` (the Merkle frontier's nodes, hex) change in the transaction that chains
    entries, so they always describe ``audit.entries``; ``published_size`` is how many entries are
    acknowledged on the topic, and ``published_checkpoint_size`` the largest checkpoint that is.
    """

    __tablename__ = "relay_state"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"), {"schema": SCHEMA})

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    tree_size: Mapped[int] = mapped_column(BigInteger, server_default="0")
    frontier: Mapped[list[str]] = mapped_column(JSONB, server_default="[]")
    checkpoint_size: Mapped[int] = mapped_column(BigInteger, server_default="0")
    checkpoint_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    published_size: Mapped[int] = mapped_column(BigInteger, server_default="0")
    published_checkpoint_size: Mapped[int] = mapped_column(BigInteger, server_default="0")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


# --- Who acted ----------------------------------------------------------------------------------------------


def actor_ref(blind_index: BlindIndex, subject: str) -> UUID:
    """The pseudonymous actor id of a person (a token's subject): a keyed UUID, the same for the same subject
    in every service, that nobody can link back to the subject without the blind-index key."""
    return blind_index.pseudonym("actor", subject)


def system_actor(service: str) -> UUID:
    """The actor id of a service acting on its own (a sweeper, a consumer), with role :data:`SYSTEM_ROLE`.

    Fixed and public, ``uuid5(SYSTEM_ACTOR_NAMESPACE, service)``, so an auditor can compute it: e.g.
    ``system_actor("retention")``. A service name is no personal data, so it needs no key.
    """
    if not _CODE.fullmatch(service):
        raise ValueError("service must be a short lower-case code")
    return uuid.uuid5(SYSTEM_ACTOR_NAMESPACE, service)


# --- Writing ------------------------------------------------------------------------------------------------


def outbox_entries(
    *,
    actor: UUID,
    role: str,
    action: Action,
    object_type: str,
    object_ids: Iterable[UUID] = (),
    outcome: Outcome = Outcome.SUCCESS,
    reason: str | None = None,
    service: str,
    occurred_at: datetime,
) -> list[dict[str, Any]]:
    """The validated outbox entries of one action: one, or one per :data:`MAX_OBJECT_IDS` object ids.

    Raises ValueError for anything :class:`shared.audit.chain.AuditEvent` would refuse (an id that is not a
    lower-case UUID, a role or reason that is not a short code, a naive time); the message names the fields
    and never repeats their values, since a refused value is exactly what may be personal data.
    """
    if occurred_at.tzinfo is None or occurred_at.utcoffset() is None:
        raise ValueError("audit entry refused: occurred_at (timezone_aware)")
    # str() of anything else (a name, a phone number) fails the UUID pattern below, as it should.
    ids = [str(object_id) for object_id in object_ids]
    chunks = [ids[start : start + MAX_OBJECT_IDS] for start in range(0, len(ids), MAX_OBJECT_IDS)] or [[]]
    entries = []
    for chunk in chunks:
        try:
            entries.append(
                validate_fields(
                    event_id=uuid.uuid4(),
                    occurred_at=occurred_at.astimezone(UTC),
                    actor=str(actor),
                    role=role,
                    action=action,
                    object_type=object_type,
                    object_ids=tuple(chunk),
                    outcome=outcome,
                    reason=reason,
                    service=service,
                )
            )
        except ValidationError as exc:
            fields = sorted(
                {
                    f"{'.'.join(str(part) for part in error['loc']) or 'entry'} ({error['type']})"
                    for error in exc.errors(include_url=False, include_input=False, include_context=False)
                }
            )
            # `from None`: the chained ValidationError would print the refused input.
            raise ValueError(f"audit entry refused: {', '.join(fields)}") from None
    return entries


async def record(
    session: AsyncSession,
    *,
    actor: UUID,
    role: str,
    action: Action,
    object_type: str,
    object_ids: Iterable[UUID] = (),
    outcome: Outcome = Outcome.SUCCESS,
    reason: str | None = None,
    service: str,
    occurred_at: datetime,
) -> None:
    """Record one action in the audit log, as part of the caller's transaction.

    Validates at once (ValueError, see :func:`outbox_entries`) and inserts the outbox row(s) in
    ``session``'s transaction without committing: the caller's commit makes the action and its audit entry
    durable together, and a rollback drops both. More than :data:`MAX_OBJECT_IDS` object ids become several
    entries. The relay chains and publishes the entry shortly after the commit.
    """
    entries = outbox_entries(
        actor=actor,
        role=role,
        action=action,
        object_type=object_type,
        object_ids=object_ids,
        outcome=outcome,
        reason=reason,
        service=service,
        occurred_at=occurred_at,
    )
    # Executed now rather than added to the session, so a refused row fails here, at the step it belongs to.
    # A plain INSERT without RETURNING: a restricted database role (record rules) needs the right to add
    # outbox rows, not to read any back.
    await session.execute(insert(AuditOutbox), [{"entry": entry} for entry in entries])


async def record_now(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    actor: UUID,
    role: str,
    action: Action,
    object_type: str,
    object_ids: Iterable[UUID] = (),
    outcome: Outcome = Outcome.SUCCESS,
    reason: str | None = None,
    service: str,
    occurred_at: datetime,
) -> None:
    """:func:`record` in a transaction of its own, committed before returning: for refusals and other
    attempts that have no transaction to join."""
    async with sessionmaker() as session, session.begin():
        await record(
            session,
            actor=actor,
            role=role,
            action=action,
            object_type=object_type,
            object_ids=object_ids,
            outcome=outcome,
            reason=reason,
            service=service,
            occurred_at=occurred_at,
        )


async def record_not_found(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    actor: UUID,
    role: str,
    object_type: str,
    service: str,
    occurred_at: datetime,
) -> None:
    """A read of something that does not exist (or is not the caller's to see): audited as a failed read, since
    probing for ids is itself worth an auditor's eye."""
    await record_now(
        sessionmaker,
        actor=actor,
        role=role,
        action=Action.READ,
        object_type=object_type,
        outcome=Outcome.FAILED,
        reason="http_404",
        service=service,
        occurred_at=occurred_at,
    )


# --- The checkpoint signing key -----------------------------------------------------------------------------


def load_signing_key(pem: bytes) -> Ed25519PrivateKey:
    """The checkpoint signing key from PEM (PKCS#8, unencrypted); ValueError for any other key."""
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("the audit signing key must be an Ed25519 private key")
    return key


def public_key_pem(private_key: Ed25519PrivateKey) -> bytes:
    """The PEM (SubjectPublicKeyInfo) public key auditors verify checkpoints with."""
    return private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def audit_signing_key_file(settings: Settings) -> Path:
    """Where the audit checkpoint signing key is: AUDIT_SIGNING_KEY_FILE (mounted from a secret; required in
    production), else outside production a pair made on first use, SAILO_DATA_DIR/keys/audit-private.pem
    beside audit-public.pem."""
    if settings.audit_signing_key_file is not None:
        return settings.audit_signing_key_file
    if settings.sailo_env is Environment.PRODUCTION:
        raise ValueError("AUDIT_SIGNING_KEY_FILE must be set in production")
    private, _public = local_key_pair(settings.sailo_data_dir, "audit")
    return private


def audit_signing_key(settings: Settings) -> Ed25519PrivateKey:
    """The key that signs audit checkpoints (see :func:`audit_signing_key_file`)."""
    return load_signing_key(audit_signing_key_file(settings).read_bytes())
