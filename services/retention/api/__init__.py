"""Retention's HTTP routes: holds, a contact's schedule with the reason each part is kept, the forecast of
upcoming deletions, certificates of deletion (JSON or CSV), and the policies with their versions.

Who may call each route is in shared/security/authorization.yaml; every call is audited. The routers are
included in this order, which is the order of the paths in the OpenAPI document.
"""

from __future__ import annotations

from fastapi import APIRouter

from services.retention.api import certificates, forecast, holds, policies, schedule

router = APIRouter()
for module in (holds, schedule, forecast, certificates, policies):
    router.include_router(module.router)
