"""DSR's HTTP routes: a caseworker's queue of data-subject requests and every step of one.

Routes parse the request and call one function of services.dsr.service (lifecycle or answers) with the route's session,
which commits after the route returns: a step, its audit entry and its event are one transaction. Who may call
each route is in shared/security/authorization.yaml.
"""

from __future__ import annotations

from services.dsr.api import answers, candidates, requests

# Each module's router carries the /v1 prefix itself rather than through a parent router: the route table
# (shared.security.access) looks a route up by the path of the route object the request matched, and a route
# included through a parent would carry only its own part of the path.
routers = (requests.router, candidates.router, answers.router)

__all__ = ["routers"]
