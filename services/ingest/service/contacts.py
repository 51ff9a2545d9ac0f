"""Reading the record store for a person: find a platform's contact id under the reader's record rules, and show
the contact, every read and every refused one audited."""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.ingest.schemas import (
    ArtifactRead,
    ContactRead,
    EventRead,
    PartyRead,
    RecordingInfo,
    RectificationRead,
)
from shared.app import Caller
from shared.audit.chain import Action
from shared.audit.chain import Outcome as AuditOutcome
from shared.audit.log import record_now
from shared.platform.crypto import BlindIndex
from shared.platform.errors import ApiError
from shared.policy.registry import PolicyRegistry
from shared.recordstore.contacts import (
    ContactView,
    StoredContact,
    contact_view,
    contacts_handled_by,
    contacts_named,
)
from shared.recordstore.keystore import KeyStore
from shared.security.access import apply_record_rules
from shared.security.auth import Principal, Role


def contact_ref(blind_index: BlindIndex, register: str, contact_id: str) -> UUID:
    return blind_index.pseudonym("contact", register, contact_id)


class ContactService:
    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        blind_index: BlindIndex,
        policies: PolicyRegistry,
        keystore: KeyStore,
    ) -> None:
        # The sessionmaker is for one thing only: the audit entry of a refused read, which must be committed
        # although the read's own transaction is rolled back.
        self.sessionmaker = sessionmaker
        self.blind_index = blind_index
        self.policies = policies
        self.keystore = keystore

    async def find(
        self,
        session: AsyncSession,
        *,
        contact_id: str,
        register: str | None,
        principal: Principal | None = None,
    ) -> StoredContact:
        """The contact a platform calls `contact_id`, in `register` or, when not given, in whichever register
        has it.

        With a `principal`, its record rules apply (shared/security/authorization.yaml): the transaction runs
        under the database role whose row-level security enforces them, an agent who may see only their own
        contacts gets 404 for anyone else's, exactly as for a missing one, so the answer reveals nothing about
        contacts they may not see, and a restricted contact is refused to all but the legal-claims role.
        """
        if principal is not None:
            await apply_record_rules(session, principal)
        if register is not None:
            if register not in self.policies.registers():
                raise ApiError.field(422, "register", "unknown register")
            candidates = [register]
        else:
            candidates = self.policies.registers()
        refs = [contact_ref(self.blind_index, r, contact_id) for r in candidates]
        if principal is not None and principal.role is Role.AGENT:
            found = await contacts_handled_by(session, principal.agent_id, refs)
        else:
            found = await contacts_named(session, refs)
        if not found:
            raise ApiError.field(404, "contact_id", "no such contact", title="Contact not found")
        if len(found) > 1:
            raise ApiError.field(
                409,
                "register",
                "the contact id exists in several registers; name one with ?register=",
                title="Ambiguous",
            )
        contact = found[0]
        if (
            principal is not None
            and contact.restricted_at is not None
            and principal.role is not Role.LEGAL_CLAIMS
        ):
            raise ApiError.field(
                403,
                "contact_id",
                "processing of this contact is restricted (GDPR Art. 18); only the legal-claims role may use it",
                title="Restricted",
            )
        return contact

    async def find_for_reader(
        self,
        session: AsyncSession,
        caller: Caller,
        *,
        contact_id: str,
        register: str | None,
        action: Action,
    ) -> StoredContact:
        """The contact a reader asked for under their record rules; a refusal or a miss is audited, then raised.

        The refusal's audit entry is committed in a transaction of its own: the read's transaction is rolled
        back, and the attempt must stay on record all the same."""
        try:
            return await self.find(
                session, contact_id=contact_id, register=register, principal=caller.principal
            )
        except ApiError as exc:
            await session.rollback()
            await record_now(
                self.sessionmaker,
                actor=caller.actor,
                role=caller.principal.role.value,
                action=action,
                object_type="contact",
                outcome=AuditOutcome.DENIED if exc.status == 403 else AuditOutcome.FAILED,
                reason=f"http_{exc.status}",
                service=caller.service,
                occurred_at=caller.now(),
            )
            raise

    async def read(
        self,
        session: AsyncSession,
        caller: Caller,
        *,
        contact_id: str,
        register: str | None,
        recording_href: Callable[[str], str],
    ) -> ContactRead:
        """The whole contact, decrypted, for a reader; parts whose data key was destroyed show as null.
        `recording_href` gives the recording's address in the contact's register."""
        contact = await self.find_for_reader(
            session, caller, contact_id=contact_id, register=register, action=Action.READ
        )
        view = await contact_view(session, self.keystore, contact)
        read = _contact_read(view, contact_id=contact_id, recording_href=recording_href(contact.register))
        await caller.audit(session, Action.READ, "contact", [contact.contact_ref])
        return read


def _contact_read(view: ContactView, *, contact_id: str, recording_href: str) -> ContactRead:
    contact = view.contact
    recording = view.recording
    return ContactRead(
        contact_id=contact_id,
        register_id=contact.register,
        policy_version=contact.policy_version,
        channel=contact.channel,
        started_at=contact.started_at,
        ended_at=contact.ended_at,
        direction=contact.direction,
        agent_id=contact.agent_id,
        case_number=contact.case_number,
        case_status=contact.case_status,
        parties=[PartyRead(role=p.role, details=p.details) for p in view.parties],
        events=[
            EventRead(
                event_id=str(e.event_id),
                type=e.type,
                occurred_at=e.occurred_at,
                artifact_class=e.artifact_class,
                data=e.data,
            )
            for e in view.events
        ],
        artifacts=[
            ArtifactRead(
                artifact_class=a.artifact_class, status=a.status, first_at=a.first_at, last_at=a.last_at
            )
            for a in view.artifacts
        ],
        recording=RecordingInfo(
            sha256=recording.sha256,
            size_bytes=recording.size_bytes,
            duration_ms=recording.duration_ms,
            content_type=recording.content_type,
            href=recording_href,
        )
        if recording
        else None,
        rectifications=[
            RectificationRead(
                kind=r["kind"],
                field=r["field"],
                artifact_class=r["artifact_class"],
                case_number=r["case_number"],
                made_at=r["made_at"],
                statement=r.get("text"),
            )
            for r in view.rectifications
        ],
    )
