"""Data keys: one random AES-256 key per contact and retention class, stored only wrapped by the KEK.

Destroying a row here is crypto-shredding: every ciphertext under that key (rows, blobs, Kafka copies, backups)
becomes unreadable at once. Unwrapped keys are cached briefly in memory so hot paths avoid a query per event;
the cache lifetime bounds how long a destroyed key can still be used by a running process.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterable
from datetime import datetime
from uuid import UUID

from sqlalchemy import DateTime, LargeBinary, String, TextClause, event, func, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from shared.platform.crypto import generate_data_key, unwrap_data_key, wrap_data_key
from shared.platform.db import Base, bulk_insert
from shared.platform.settings import Settings

KeyRef = tuple[UUID, str]  # (contact_ref, artifact_class)


class DataKey(Base):
    __tablename__ = "data_keys"
    __table_args__ = {"schema": "keys"}

    contact_ref: Mapped[UUID] = mapped_column(primary_key=True)
    artifact_class: Mapped[str] = mapped_column(String(40), primary_key=True)
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    kek_id: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


# An array join rather than a row-value IN list: one prepared statement whatever the number of keys.
_LOAD_KEYS = text(
    "SELECT k.contact_ref, k.artifact_class, k.wrapped_key FROM keys.data_keys AS k"
    " JOIN unnest(CAST(:refs AS uuid[]), CAST(:classes AS varchar[])) AS wanted(contact_ref, artifact_class)"
    " USING (contact_ref, artifact_class)"
)
# The same, share-locked in one order for a writer (see KeyStore.get): crypto-shredding locks the rows for update
# in the same order, so the two wait for each other and never deadlock.
_LOAD_KEYS_HELD = text(
    "SELECT k.contact_ref, k.artifact_class, k.wrapped_key FROM keys.data_keys AS k"
    " JOIN unnest(CAST(:refs AS uuid[]), CAST(:classes AS varchar[])) AS wanted(contact_ref, artifact_class)"
    " USING (contact_ref, artifact_class) ORDER BY k.contact_ref, k.artifact_class FOR SHARE OF k"
)


def key_context(contact_ref: UUID, artifact_class: str) -> bytes:
    """Associated data binding a wrapped key (and ciphertexts) to its contact and class."""
    return f"{contact_ref}|{artifact_class}".encode()


class KeyStore:
    def __init__(
        self, *, kek: bytes, kek_id: str, cache_seconds: float = 30.0, cache_size: int = 50_000
    ) -> None:
        self._kek = kek
        self._kek_id = kek_id
        self._cache_seconds = cache_seconds
        self._cache_size = cache_size
        self._cache: OrderedDict[KeyRef, tuple[float, bytes]] = OrderedDict()

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyStore:
        """The data keys under the deployment's key-encryption key (KEY_ENCRYPTION_KEY and its id)."""
        return cls(kek=settings.kek_bytes, kek_id=settings.key_encryption_key_id)

    def _cached(self, ref: KeyRef) -> bytes | None:
        hit = self._cache.get(ref)
        if hit is None or hit[0] < time.monotonic():
            return None
        return hit[1]

    def _remember(self, ref: KeyRef, key: bytes) -> None:
        self._cache[ref] = (time.monotonic() + self._cache_seconds, key)
        self._cache.move_to_end(ref)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def forget(self, refs: Iterable[KeyRef]) -> None:
        for ref in refs:
            self._cache.pop(ref, None)

    async def get_or_create(self, session: AsyncSession, refs: Iterable[KeyRef]) -> dict[KeyRef, bytes]:
        """The data keys for `refs`, creating the missing ones (concurrent creators agree on one key)."""
        wanted = set(refs)
        found = {ref: key for ref in wanted if (key := self._cached(ref)) is not None}
        missing = wanted - found.keys()
        if missing:
            rows = [
                {
                    "contact_ref": ref[0],
                    "artifact_class": ref[1],
                    "wrapped_key": wrap_data_key(self._kek, generate_data_key(), context=key_context(*ref)),
                    "kek_id": self._kek_id,
                }
                for ref in sorted(missing)
            ]
            await bulk_insert(session, DataKey, rows, tail="ON CONFLICT DO NOTHING")
            created = await self._load(session, missing, remember=False)
            found.update(created)
            # Cached only once the keys are committed: a key remembered from a transaction that then failed (a
            # terminated session, a database restart) would seal the retried events under a key that does not
            # exist, and the record store would have to set them aside.
            event.listen(
                session.sync_session, "after_commit", lambda _: self._remember_all(created), once=True
            )
        return found

    def _remember_all(self, keys: dict[KeyRef, bytes]) -> None:
        for ref, key in keys.items():
            self._remember(ref, key)

    async def get(
        self, session: AsyncSession, refs: Iterable[KeyRef], *, hold: bool = False
    ) -> dict[KeyRef, bytes]:
        """Existing data keys only; a destroyed or unknown key is simply absent from the result.

        `hold` is for a writer about to store data under the keys. They are then read from the database, never
        the cache, and share-locked until the transaction ends. A crypto-shredding that starts meanwhile waits
        for this transaction and then removes what it wrote; one that went first leaves the key absent. Without
        the hold, a writer that read a key just before it was destroyed would store rows after the deletion
        was certified, under a key nobody has any more.
        """
        wanted = set(refs)
        if hold:
            return await self._load(session, wanted, statement=_LOAD_KEYS_HELD)
        found = {ref: key for ref in wanted if (key := self._cached(ref)) is not None}
        missing = wanted - found.keys()
        if missing:
            found.update(await self._load(session, missing))
        return found

    async def _load(
        self,
        session: AsyncSession,
        refs: set[KeyRef],
        *,
        statement: TextClause = _LOAD_KEYS,
        remember: bool = True,
    ) -> dict[KeyRef, bytes]:
        ordered = sorted(refs)
        result = await session.execute(
            statement, {"refs": [r[0] for r in ordered], "classes": [r[1] for r in ordered]}
        )
        loaded: dict[KeyRef, bytes] = {}
        for contact_ref, artifact_class, wrapped in result:
            ref = (contact_ref, artifact_class)
            key = unwrap_data_key(self._kek, wrapped, context=key_context(*ref))
            if remember:
                self._remember(ref, key)
            loaded[ref] = key
        return loaded
