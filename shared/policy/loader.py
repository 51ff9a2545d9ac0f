"""Reading the policy directory: YAML parsed strictly (no duplicate keys), every file validated against
shared.policy.model, then the checks that span sections; each problem named by file, field path and reason."""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Mapping
from datetime import date
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    ValidationError,
)

from shared.contracts.events import EVENT_TYPES, MESSAGE_EVENT_TYPES
from shared.contracts.vocabulary import ArtifactClass, Channel, EventType
from shared.policy.model import (
    Action,
    PolicyError,
    PolicyVersion,
    RegisterPolicy,
    Trigger,
)
from shared.policy.registry import PolicyRegistry

# ------------------------------------------------------------------------------------------- cross checks


def _check_register(policy: RegisterPolicy, file: Path) -> Iterator[tuple[str, str]]:
    """Rules that span fields; yields (field path, reason)."""
    if policy.register != file.stem:
        yield "register", f"register id {policy.register!r} does not match the file name {file.name!r}"

    seen_dates: dict[date, int] = {}
    seen_ids: dict[str, int] = {}
    for i, version in enumerate(policy.versions):
        here = f"versions[{i}]"
        if version.register != policy.register:
            yield (
                f"{here}.register",
                f"{version.register!r} differs from the file's register {policy.register!r}",
            )
        if version.effective_from in seen_dates:
            yield (
                f"{here}.effective_from",
                f"duplicate effective_from {version.effective_from.isoformat()} "
                f"(also versions[{seen_dates[version.effective_from]}])",
            )
        elif i and version.effective_from < policy.versions[i - 1].effective_from:
            yield (
                f"{here}.effective_from",
                f"{version.effective_from.isoformat()} is before versions[{i - 1}].effective_from "
                f"{policy.versions[i - 1].effective_from.isoformat()}: list versions in effective-date order",
            )
        seen_dates.setdefault(version.effective_from, i)
        if version.version in seen_ids:
            yield (
                f"{here}.version",
                f"duplicate version id {version.version!r} (also versions[{seen_ids[version.version]}])",
            )
        seen_ids.setdefault(version.version, i)
        yield from _check_version(version, here)


def _check_version(version: PolicyVersion, here: str) -> Iterator[tuple[str, str]]:
    accepted = set(version.intake.event_types)
    channels = set(version.channels)
    kept = set(version.classes)

    for k, event_type in enumerate(version.intake.event_types):
        if EVENT_TYPES[event_type].channel not in channels:
            yield (
                f"{here}.intake.event_types[{k}]",
                f"{event_type.value} is a {EVENT_TYPES[event_type].channel.value} event but channels does not list "
                f"{EVENT_TYPES[event_type].channel.value!r}",
            )
    takes_calls = any(EVENT_TYPES[e].channel is Channel.PHONE for e in accepted)
    if takes_calls and not version.intake.call_directions:
        yield f"{here}.intake.call_directions", "call events are accepted: name the call directions recorded"
    if not takes_calls and version.intake.call_directions:
        yield (
            f"{here}.intake.call_directions",
            "call directions are listed but no call event type is accepted",
        )

    seen: dict[ArtifactClass, int] = {}
    for j, rule in enumerate(version.retention):
        at = f"{here}.retention[{j}]"
        if rule.artifact_class in seen:
            first = seen[rule.artifact_class]
            yield (
                f"{at}.class",
                f"class {rule.artifact_class.value!r} is listed twice (also retention[{first}])",
            )
        seen.setdefault(rule.artifact_class, j)
        field_level = rule.artifact_class is ArtifactClass.CHATBOT_IDENTIFIERS
        if field_level and rule.action is not Action.REDACT:
            yield f"{at}.action", "chatbot_identifiers are values inside messages: the action is redact"
        if not field_level and rule.action is Action.REDACT:
            yield (
                f"{at}.action",
                f"redact applies to field-level classes only; {rule.artifact_class.value} is deleted",
            )
        if field_level and EventType.CHATBOT_MESSAGE not in accepted:
            yield f"{at}.class", "chatbot_identifiers is kept but intake does not accept chatbot.message"
        if rule.trigger is Trigger.CASE_CLOSED and EventType.CASE_CLOSED not in accepted:
            yield f"{at}.trigger", "case_closed needs intake to accept case.closed"
        if rule.trigger is Trigger.MESSAGE_SENT and not accepted & MESSAGE_EVENT_TYPES:
            yield f"{at}.trigger", "message_sent needs intake to accept a message event type"

    for k, category in enumerate(version.data_categories):
        for m, artifact_class in enumerate(category.artifact_classes):
            if artifact_class not in kept:
                yield (
                    f"{here}.data_categories[{k}].artifact_classes[{m}]",
                    f"class {artifact_class.value!r} has no retention rule in this version",
                )
    for k, recipient in enumerate(version.recipients):
        for m, artifact_class in enumerate(recipient.artifact_classes):
            if artifact_class not in kept:
                yield (
                    f"{here}.recipients[{k}].artifact_classes[{m}]",
                    f"class {artifact_class.value!r} has no retention rule in this version",
                )
    if version.access.listen_roles and ArtifactClass.RECORDING not in kept:
        yield f"{here}.access.listen_roles", "listen_roles are given but this version keeps no recordings"


# ------------------------------------------------------------------------------------------------- loading


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a mapping key written twice (plain PyYAML keeps the last one silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, Hashable):
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping",
                        node.start_mark,
                        f"duplicate key {key!r}",
                        key_node.start_mark,
                    )
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(document)"


def _reason(error: Mapping[str, Any]) -> str:
    message = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            message = message[len(prefix) :]
    if error["type"] == "extra_forbidden":
        return "unknown field (not part of the policy format)"
    if error["type"] == "missing":
        return "required field is missing"
    return message


def _read_yaml(file: Path) -> Any:
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(file, "(file)", f"cannot read: {exc}") from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "(document)"
        problem = getattr(exc, "problem", None) or str(exc)
        raise PolicyError(file, where, f"malformed YAML: {problem}") from None


def load_policy_file(file: Path) -> RegisterPolicy:
    """Load and validate one register's policy file; raises PolicyError."""
    raw = _read_yaml(file)
    if not isinstance(raw, dict):
        raise PolicyError(file, "(document)", "expected a mapping with format_version, register and versions")
    try:
        policy = RegisterPolicy.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors()
        # A list whose item failed also reports itself "too short" (the failed item is not counted): noise.
        locs = [tuple(e["loc"]) for e in errors]
        errors = [
            e
            for e, loc in zip(errors, locs, strict=True)
            if not (e["type"] == "too_short" and any(o[: len(loc)] == loc and o != loc for o in locs))
        ]
        problems = tuple((_path(tuple(e["loc"])), _reason(e)) for e in errors)
        (path, reason), more = problems[0], problems[1:]
        raise PolicyError(file, path, reason, more=more) from None
    problems = tuple(_check_register(policy, file))
    if problems:
        (path, reason), more = problems[0], problems[1:]
        raise PolicyError(file, path, reason, more=more)
    return policy


def load_policies(directory: Path) -> PolicyRegistry:
    """Load every ``*.yaml`` in `directory`; raises PolicyError for the first bad file (in name order)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise PolicyError(directory, "(directory)", "policy directory does not exist")
    stray = sorted(directory.glob("*.yml"))
    if stray:
        raise PolicyError(stray[0], "(file)", "policy files end in .yaml; this one would be ignored")
    files = sorted(directory.glob("*.yaml"))
    if not files:
        raise PolicyError(directory, "(directory)", "no *.yaml policy files")
    policies: dict[str, RegisterPolicy] = {}
    sources: dict[str, Path] = {}
    for file in files:
        policy = load_policy_file(file)
        policies[policy.register] = policy
        sources[policy.register] = file
    for register, policy in policies.items():
        for i, version in enumerate(policy.versions):
            for k, category in enumerate(version.data_categories):
                target = category.stored_in_register
                if target is not None and target not in policies:
                    raise PolicyError(
                        sources[register],
                        f"versions[{i}].data_categories[{k}].stored_in_register",
                        f"no policy file defines register {target!r}",
                    )
    return PolicyRegistry(policies)
