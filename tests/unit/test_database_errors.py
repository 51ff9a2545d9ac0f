"""A database that goes away under a request is an outage (503, retry), not a server bug (500).

asyncpg reports a terminated session or a restarting server as InternalError, not OperationalError; the fault
harness saw ingest answer 500 for it before `database_went_away` recognised these.
"""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_dbapi as Driver
from sqlalchemy.exc import DBAPIError

from shared.platform.http import database_went_away


def _as_sqlalchemy_raises_it(error: asyncpg.PostgresError, adapted: type[Exception]) -> DBAPIError:
    # What SQLAlchemy's asyncpg dialect does with a server error: adapt it, keep its SQLSTATE, wrap it.
    driver_error = adapted(f"{type(error)}: {error}")
    driver_error.sqlstate = driver_error.pgcode = error.sqlstate  # type: ignore[attr-defined]
    return DBAPIError.instance("SELECT 1", None, driver_error, Driver.Error)


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.exceptions.CrashShutdownError("terminating connection because of crash of another process"),
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        asyncpg.exceptions.ConnectionFailureError("connection failure"),
    ],
)
def test_a_lost_session_or_a_restarting_server_is_an_outage(error: asyncpg.PostgresError) -> None:
    assert database_went_away(_as_sqlalchemy_raises_it(error, Driver.InternalError))


@pytest.mark.parametrize(
    ("error", "adapted"),
    [
        (asyncpg.exceptions.UniqueViolationError("duplicate key"), Driver.IntegrityError),
        (asyncpg.exceptions.DivisionByZeroError("division by zero"), Driver.DataError),
        (asyncpg.exceptions.UndefinedTableError("no such table"), Driver.ProgrammingError),
    ],
)
def test_a_failing_statement_is_not_an_outage(error: asyncpg.PostgresError, adapted: type[Exception]) -> None:
    assert not database_went_away(_as_sqlalchemy_raises_it(error, adapted))


def test_errors_that_are_not_from_the_database_are_not_an_outage() -> None:
    assert not database_went_away(ValueError("no"))
