"""Which policy each register was kept under, and when that changed: a policy change is an audited step.

Every service records, when it starts, a digest of each register's policy file as it parsed it. The first
process to apply a digest the database has not seen writes one ``policy_changed`` audit entry for that register
(with the latest version id as its reason code), in the same transaction as the row that marks it seen. So an
auditor can line up any deletion or refusal with the exact policy in force, and a silent edit of a policy file
still leaves a trace.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime
from typing import Final

from sqlalchemy import DateTime, String, func
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from shared.audit.chain import Action
from shared.audit.log import SYSTEM_ROLE, record, system_actor
from shared.platform.clock import Clock
from shared.platform.db import Base
from shared.platform.logging import get_logger
from shared.policy.registry import PolicyRegistry

log = get_logger(__name__)

SCHEMA: Final = "policy"
REGISTER_NAMESPACE: Final = uuid.UUID("5d0b8f5e-7c55-4a8e-9a43-2f0c1b6d9e10")
"""Registers appear in audit entries as uuid5(REGISTER_NAMESPACE, register id): the entry format takes only ids."""


class AppliedPolicy(Base):
    __tablename__ = "applied"
    __table_args__ = {"schema": SCHEMA}

    register: Mapped[str] = mapped_column(String(64), primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    latest_version: Mapped[str] = mapped_column(String(40))
    first_applied_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    first_applied_by: Mapped[str] = mapped_column(String(40))
    """The service that first started with this policy."""


def register_ref(register: str) -> uuid.UUID:
    return uuid.uuid5(REGISTER_NAMESPACE, register)


def policy_digest(registry: PolicyRegistry, register: str) -> str:
    return hashlib.sha256(registry.get(register).model_dump_json(by_alias=True).encode()).hexdigest()


async def record_applied_policies(
    sessionmaker: async_sessionmaker[AsyncSession], registry: PolicyRegistry, *, service: str, clock: Clock
) -> list[str]:
    """Mark each register's current policy as applied; returns the registers whose policy is new here."""
    changed: list[str] = []
    async with sessionmaker() as session, session.begin():
        for register in registry.registers():
            latest = registry.latest(register).version
            inserted = await session.scalar(
                insert(AppliedPolicy)
                .values(
                    register=register,
                    digest=policy_digest(registry, register),
                    latest_version=latest,
                    first_applied_by=service,
                )
                .on_conflict_do_nothing()
                .returning(AppliedPolicy.register)
            )
            if inserted is None:
                continue
            changed.append(register)
            await record(
                session,
                actor=system_actor(service),
                role=SYSTEM_ROLE,
                action=Action.POLICY_CHANGED,
                object_type="register",
                object_ids=[register_ref(register)],
                reason=latest,
                service=service,
                occurred_at=clock.now(),
            )
    if changed:
        log.info("policy.applied", registers=changed, service=service)
    return changed
