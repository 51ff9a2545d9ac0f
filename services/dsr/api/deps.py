"""What every DSR route takes: the caller, authorized by the route table, with a missing request audited."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request

from services.dsr.service.lifecycle import SERVICE, RequestNotFound
from shared.app import Caller, caller_of, runtime
from shared.audit.log import record_not_found
from shared.security.access import authorize

_authorized_caller = caller_of(authorize(SERVICE))


async def _caller(
    request: Request, caller: Annotated[Caller, Depends(_authorized_caller)]
) -> AsyncIterator[Caller]:
    """The caller; a request id that names no request is answered 404 and audited as a failed read.

    The audit entry needs a transaction of its own, committed although the step is refused: the route's
    session rolls back with the error. So it is written here, where the error passes on its way out.
    """
    try:
        yield caller
    except RequestNotFound:
        rt = runtime(request)
        await record_not_found(
            rt.sessionmaker,
            actor=caller.actor,
            role=caller.principal.role.value,
            object_type="dsr.request",
            service=SERVICE,
            occurred_at=rt.clock.now(),
        )
        raise


CallerDep = Annotated[Caller, Depends(_caller, scope="function")]
"""Who calls a DSR route (see :func:`_caller`)."""
