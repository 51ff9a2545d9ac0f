"""The one way an error reaches HTTP: raise :class:`ApiError` (or a subclass) with its status, anywhere below
a route or in a service function; ``shared.platform.http`` renders it once, as application/problem+json.

Service rules raise these directly instead of returning status codes or raising an exception of their own
that a route must translate: a rule knows best why it refused (409 for a state conflict, 404 for something
not there, 422 for a field that breaks a rule), and the route stays a thin call. The errors name the field
and the reason, never the submitted value, so no personal data reaches an error body.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    field: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "reason": self.reason}


class ApiError(Exception):
    """An error with its HTTP status; rendered as application/problem+json."""

    def __init__(
        self,
        status: int,
        title: str,
        errors: Sequence[FieldError] = (),
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(title)
        self.status = status
        self.title = title
        self.errors = list(errors)
        self.headers = headers or {}

    @classmethod
    def field(cls, status: int, field: str, reason: str, *, title: str | None = None) -> ApiError:
        return cls(status, title or reason, [FieldError(field, reason)])


class PoisonMessage(Exception):
    """A Kafka message that can never be processed (it breaks its contract, or names what is not there): it
    goes to the dead-letter topic instead of being retried; `reason` names the field and why, never its content."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
