"""Who may call what: the route x role table in ``authorization.yaml``, and the record rules behind it.

Every route of every service depends on :func:`authorize`, which looks the route up in the table by the path
template FastAPI matched (``GET /v1/contacts/{contact_id}``) and refuses a role the table does not list with 403
(and an audit entry). A route missing from the table refuses everyone: forgetting a row fails closed, and a
test fails when a service has a route the table lacks.

Record rules narrow an allowed role row by row. They are applied in each query, and :func:`apply_record_rules`
also switches the transaction to a database role under PostgreSQL row-level security, so that a query that
forgot its filter still returns nothing of anyone else's (the policies are in migration 0004).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from functools import cache
from pathlib import Path
from typing import Any, Final

import yaml
from fastapi import HTTPException, Request, status
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from shared.audit.chain import Action, Outcome
from shared.audit.log import actor_ref, record_now
from shared.platform.crypto import BlindIndex
from shared.security.auth import Principal, PrincipalDep, Role

__all__ = [
    "AGENT_DB_ROLE",
    "AUTHORIZATION_FILE",
    "INSTITUTE_DB_ROLE",
    "AuthorizationTable",
    "RouteRule",
    "apply_record_rules",
    "authorization_table",
    "authorize",
    "load_authorization",
    "render_markdown",
]

AUTHORIZATION_FILE: Final = Path(__file__).with_name("authorization.yaml")
AGENT_DB_ROLE: Final = "sailo_agent"
"""Database role an agent's transactions run under; row-level security shows it only the agent's contacts."""
INSTITUTE_DB_ROLE: Final = "sailo_institute"
"""Database role an institute's transactions run under; row-level security shows it only its own loans."""

_METHODS: Final = ("GET", "POST", "PUT", "PATCH", "DELETE")


class RouteRule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    roles: frozenset[Role] = Field(default_factory=frozenset)
    record_rules: tuple[str, ...] = ()


class AuthorizationTable(BaseModel):
    """The parsed ``authorization.yaml``; keys of ``routes`` are service names, then ``"METHOD /path"``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    roles: dict[Role, str]
    record_rules: dict[str, str]
    public: tuple[str, ...]
    routes: dict[str, dict[str, RouteRule]]

    @field_validator("public")
    @classmethod
    def _public_shape(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for route in value:
            _check_route_key(route)
        return value

    @field_validator("routes")
    @classmethod
    def _route_shape(cls, value: dict[str, dict[str, RouteRule]]) -> dict[str, dict[str, RouteRule]]:
        for rules in value.values():
            for route in rules:
                _check_route_key(route)
        return value

    def model_post_init(self, _context: Any) -> None:
        if missing := set(Role) - self.roles.keys():
            raise ValueError(f"roles: no description for {sorted(missing)}")
        for service, rules in self.routes.items():
            for route, rule in rules.items():
                if unknown := set(rule.record_rules) - self.record_rules.keys():
                    raise ValueError(f"routes.{service}.{route}: unknown record rule {sorted(unknown)}")

    def rule(self, service: str, method: str, path: str) -> RouteRule | None:
        """The rule for a route, or None when the table does not list it (which refuses everyone)."""
        return self.routes.get(service, {}).get(f"{method.upper()} {path}")

    def is_public(self, method: str, path: str) -> bool:
        return f"{method.upper()} {path}" in self.public


def _check_route_key(route: str) -> None:
    method, _, path = route.partition(" ")
    if method not in _METHODS or not path.startswith("/"):
        raise ValueError(f"{route!r}: a route is written 'METHOD /path', METHOD one of {', '.join(_METHODS)}")


def load_authorization(path: Path = AUTHORIZATION_FILE) -> AuthorizationTable:
    """Parse and check the table; a mistake names the file and the field, and stops the service at start."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        return AuthorizationTable.model_validate(raw)
    except (OSError, yaml.YAMLError, ValidationError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from None


@cache
def authorization_table() -> AuthorizationTable:
    return load_authorization()


def render_markdown(table: AuthorizationTable) -> str:
    """The table as Markdown, routes down and roles across: what README.md shows."""
    roles = list(Role)
    lines = [
        "| Service | Route | " + " | ".join(role.value for role in roles) + " | Record rules |",
        "|---|---|" + "---|" * len(roles) + "---|",
    ]
    for service, rules in table.routes.items():
        for route, rule in rules.items():
            cells = ["yes" if role in rule.roles else "-" for role in roles]
            row = [service, f"`{route}`", *cells, ", ".join(rule.record_rules) or "-"]
            lines.append("| " + " | ".join(row) + " |")
    lines.append(
        "| all | "
        + ", ".join(f"`{r}`" for r in table.public)
        + " | "
        + " | ".join("public" for _ in roles)
        + " | - |"
    )
    return "\n".join(lines) + "\n"


_ACTIONS: Final[Mapping[str, Action]] = {"GET": Action.READ, "POST": Action.CREATE, "PUT": Action.CREATE}


def _blind_index(request: Request) -> BlindIndex:
    state = request.app.state
    index = getattr(state, "blind_index", None)
    if not isinstance(index, BlindIndex):
        index = BlindIndex(state.runtime.settings.blind_index_key_bytes)
        state.blind_index = index
    return index


def authorize(service: str) -> Callable[..., Awaitable[Principal]]:
    """Dependency factory: the caller's :class:`Principal` when the table lets its role call this route.

    A refusal is answered 403 and recorded in the audit log (who, which route's kind of action, denied); it
    names the role, never the caller.
    """

    async def dependency(request: Request, principal: PrincipalDep) -> Principal:
        route = request.scope.get("route")
        path = getattr(route, "path", None)
        rule = authorization_table().rule(service, request.method, path) if path else None
        if rule is not None and principal.role in rule.roles:
            return principal
        runtime = request.app.state.runtime
        await record_now(
            runtime.sessionmaker,
            actor=actor_ref(_blind_index(request), principal.subject),
            role=principal.role.value,
            action=_ACTIONS.get(request.method, Action.READ),
            object_type="route",
            outcome=Outcome.DENIED,
            reason="role_not_allowed" if rule is not None else "route_not_in_table",
            service=service,
            occurred_at=runtime.clock.now(),
        )
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, detail=f"role {principal.role.value} may not use this endpoint"
        )

    return dependency


async def apply_record_rules(session: AsyncSession, principal: Principal) -> None:
    """Run the rest of ``session``'s transaction under the database role that enforces ``principal``'s record
    rules by row-level security; roles without such rules keep the service's own role.

    ``SET LOCAL`` ends with the transaction, so a pooled connection never carries one caller's role into the
    next caller's work.
    """
    if principal.role is Role.AGENT:
        await session.execute(text(f"SET LOCAL ROLE {AGENT_DB_ROLE}"))
        await session.execute(
            text("SELECT set_config('sailo.agent_id', :value, true)"), {"value": principal.agent_id or ""}
        )
    elif principal.role is Role.INSTITUTE:
        await session.execute(text(f"SET LOCAL ROLE {INSTITUTE_DB_ROLE}"))
        await session.execute(
            text("SELECT set_config('sailo.institute_id', :value, true)"),
            {"value": principal.institute_id or ""},
        )
