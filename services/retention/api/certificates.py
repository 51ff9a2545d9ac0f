"""Certificates of deletion, as JSON or CSV."""

from __future__ import annotations

import csv
import io
from typing import Annotated, Any, Literal

from fastapi import Query
from fastapi.responses import Response

from services.retention.api.common import (
    CallerDep,
    PoliciesDep,
    RegisterQuery,
    check_register,
    new_router,
    parse_day,
)
from services.retention.schemas import CertificateList, CertificateRead
from services.retention.service import views
from shared.app import SessionDep
from shared.platform.http import problem_responses

router = new_router()

_CSV_FIELDS = [field.alias or name for name, field in CertificateRead.model_fields.items()]


@router.get(
    "/certificates",
    response_model=CertificateList,
    summary="Certificates of deletion, as JSON or CSV (format=csv)",
    responses={
        200: {"content": {"text/csv": {"schema": {"type": "string"}}}},
        **problem_responses(401, 403, 422),
    },
)
async def certificates(
    caller: CallerDep,
    session: SessionDep,
    policies: PoliciesDep,
    register: RegisterQuery = None,
    from_text: Annotated[str | None, Query(alias="from", pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")] = None,
    to_text: Annotated[str | None, Query(alias="to", pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")] = None,
    output: Annotated[Literal["json", "csv"], Query(alias="format")] = "json",
) -> Any:
    check_register(policies, register)
    from_day, to_day = parse_day("from", from_text), parse_day("to", to_text)
    reads = await views.certificates(session, caller, register=register, from_day=from_day, to_day=to_day)
    if output == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=_CSV_FIELDS)
        writer.writeheader()
        for read in reads:
            writer.writerow(read.model_dump(mode="json"))
        return Response(buffer.getvalue(), media_type="text/csv")
    return CertificateList(certificates=reads)
