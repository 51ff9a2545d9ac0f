"""The registers and their policy versions, as loaded at start."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from services.retention.api.common import SERVICE, PoliciesDep, new_router
from services.retention.rules import describe_period
from services.retention.schemas import PolicyList, PolicyRead, PolicyVersionRead
from shared.platform.http import problem_responses
from shared.security.access import authorize
from shared.security.auth import Principal

router = new_router()


@router.get(
    "/policies",
    response_model=PolicyList,
    summary="Registers and their policy versions",
    responses=problem_responses(401, 403),
)
async def policies(
    principal: Annotated[Principal, Depends(authorize(SERVICE))], registry: PoliciesDep
) -> PolicyList:
    # The policies as loaded at start: nothing from the database and nothing about a person to audit.
    return PolicyList(
        policies=[
            PolicyRead(
                register_id=register,
                versions=[
                    PolicyVersionRead(
                        version=version.version,
                        effective_from=version.effective_from,
                        retention=[
                            f"{rule.artifact_class.value}: {rule.action.value} {describe_period(rule.period)} "
                            f"from {rule.trigger.value}"
                            for rule in version.retention
                        ],
                    )
                    for version in registry.get(register).versions
                ],
            )
            for register in registry.registers()
        ]
    )
