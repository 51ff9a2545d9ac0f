"""The loaded registers: every register's policy by id, and the version in force on a day or by its id."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from shared.policy.model import (
    PolicyVersion,
    RegisterPolicy,
    UnknownRegister,
)


class PolicyRegistry:
    """Every register's validated policy, by register id. Immutable once loaded."""

    def __init__(self, policies: Mapping[str, RegisterPolicy]):
        self._policies = dict(sorted(policies.items()))

    def registers(self) -> list[str]:
        return list(self._policies)

    def __contains__(self, register: object) -> bool:
        return register in self._policies

    def __len__(self) -> int:
        return len(self._policies)

    def get(self, register: str) -> RegisterPolicy:
        try:
            return self._policies[register]
        except KeyError:
            raise UnknownRegister(register, self.registers()) from None

    def version_at(self, register: str, at: datetime) -> PolicyVersion | None:
        """The version of `register` in force at `at` (aware datetime); None before it began."""
        return self.get(register).version_at(at)

    def latest(self, register: str) -> PolicyVersion:
        return self.get(register).latest

    def version(self, register: str, version_id: str) -> PolicyVersion:
        """A version by its id (as stamped on records); raises UnknownRegister / UnknownPolicyVersion."""
        return self.get(register).version(version_id)
