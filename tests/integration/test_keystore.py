"""The data-key store on the real database: a key exists for other processes only once it is committed, and the
cache never hands out one that is not.

The fault harness found this: ingest created a contact's key, the database session was terminated before the
commit, and the key stayed in ingest's cache. The retried events were sealed under it, and the record store,
which finds no such key, had to set them aside.
"""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.platform.settings import Settings
from shared.recordstore.keystore import KeyStore
from tests.integration.conftest import Ingest


def _store(settings: Settings) -> KeyStore:
    return KeyStore.from_settings(settings)


def _sessionmaker(ingest: Ingest) -> async_sessionmaker[AsyncSession]:
    sm: async_sessionmaker[AsyncSession] = ingest.app.state.runtime.sessionmaker
    return sm


async def _stored(sessionmaker: async_sessionmaker[AsyncSession], ref: uuid.UUID) -> int:
    async with sessionmaker() as session:
        return int(
            await session.scalar(
                text("SELECT count(*) FROM keys.data_keys WHERE contact_ref = :ref"), {"ref": ref}
            )
            or 0
        )


async def test_a_key_from_a_transaction_that_failed_is_not_served_from_the_cache(ingest: Ingest) -> None:
    store = _store(ingest.settings)
    sessionmaker = _sessionmaker(ingest)
    ref = (uuid.uuid4(), "metadata")

    with pytest.raises(RuntimeError):
        async with sessionmaker() as session, session.begin():
            first = await store.get_or_create(session, [ref])
            raise RuntimeError("the session is lost before the commit")
    assert await _stored(sessionmaker, ref[0]) == 0

    # The retry must create (and commit) a key that exists, not reuse the one nobody stored.
    async with sessionmaker() as session, session.begin():
        second = await store.get_or_create(session, [ref])
    assert second[ref] != first[ref]
    assert await _stored(sessionmaker, ref[0]) == 1
    async with sessionmaker() as session:
        assert await _store(ingest.settings).get(session, [ref]) == second


async def test_a_committed_key_is_cached_for_the_next_caller(ingest: Ingest) -> None:
    store = _store(ingest.settings)
    sessionmaker = _sessionmaker(ingest)
    ref = (uuid.uuid4(), "metadata")
    async with sessionmaker() as session, session.begin():
        created = await store.get_or_create(session, [ref])

    # Removed behind the cache's back: the cache still answers, so the key was remembered at the commit.
    async with sessionmaker() as session, session.begin():
        await session.execute(text("DELETE FROM keys.data_keys WHERE contact_ref = :ref"), {"ref": ref[0]})
    async with sessionmaker() as session:
        assert await store.get(session, [ref]) == created
