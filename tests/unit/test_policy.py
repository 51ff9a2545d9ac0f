"""Register policies: the repository's files load, versions are chosen by date, bad files are refused."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pydantic
import pytest
import yaml

from shared.contracts.vocabulary import ArtifactClass
from shared.policy.loader import load_policies, load_policy_file
from shared.policy.model import (
    Action,
    LegalBasis,
    Period,
    PolicyError,
    RightStatus,
    Safeguard,
    Trigger,
    UnknownPolicyVersion,
    UnknownRegister,
)
from shared.policy.registry import PolicyRegistry

POLICY_DIR = Path(__file__).resolve().parents[2] / "policies"
HELSINKI = ZoneInfo("Europe/Helsinki")

REGISTERS = {
    "prh-customer-service",
    "prh-beneficial-owner-customers",
    "dvv-personal-customer-service",
    "statfi-chat",
    "hsy-customer-service",
}


@pytest.fixture(scope="module")
def registry() -> PolicyRegistry:
    return load_policies(POLICY_DIR)


# ------------------------------------------------------------------------------------ the repository's files


def test_every_register_loads(registry: PolicyRegistry) -> None:
    assert set(registry.registers()) == REGISTERS
    assert registry.registers() == sorted(REGISTERS)
    for register in registry.registers():
        for version in registry.get(register).versions:
            assert version.register == register
            assert version.time_zone == HELSINKI
            assert version.automated_decisions.automated_decision_making is False
            assert version.automated_decisions.profiling is False
            assert version.rights.complaint_authority.name == "Office of the Data Protection Ombudsman"


def test_prh_has_two_versions_in_date_order(registry: PolicyRegistry) -> None:
    versions = registry.get("prh-customer-service").versions
    assert [v.version for v in versions] == ["2018-05-25", "2021-10-20"]
    assert [v.effective_from for v in versions] == [date(2017, 10, 1), date(2021, 10, 20)]
    assert registry.latest("prh-customer-service").version == "2021-10-20"
    assert registry.version("prh-customer-service", "2018-05-25") is versions[0]


def test_2019_contact_gets_the_2018_version_without_chatbot(registry: PolicyRegistry) -> None:
    version = registry.version_at("prh-customer-service", datetime(2019, 3, 1, 10, 0, tzinfo=HELSINKI))
    assert version is not None
    assert version.version == "2018-05-25"
    assert not version.intake.accepts("chatbot.message")
    assert not version.intake.accepts("sms_survey.answered")
    assert version.retention_for(ArtifactClass.CHATBOT_IDENTIFIERS) is None
    assert version.retention_for("survey_answers") is None
    assert version.keeps("participant_data")  # the 2018 notice records the chat nickname


def test_2022_contact_gets_the_2021_version_with_chatbot(registry: PolicyRegistry) -> None:
    version = registry.version_at("prh-customer-service", datetime(2022, 6, 1, 12, 0, tzinfo=HELSINKI))
    assert version is not None
    assert version.version == "2021-10-20"
    assert version.intake.accepts("chatbot.message")
    assert version.intake.accepts("sms_survey.sent")
    rule = version.retention_for(ArtifactClass.CHATBOT_IDENTIFIERS)
    assert rule is not None
    assert rule.period == Period(hours=1)
    assert str(rule.period) == "PT1H"
    assert rule.trigger is Trigger.MESSAGE_SENT
    assert rule.action is Action.REDACT
    assert not version.keeps("participant_data")


def test_version_boundary_is_the_local_date_in_helsinki(registry: PolicyRegistry) -> None:
    # 20.10.2021 00:00 in Helsinki (EEST, UTC+3) is 19.10.2021 21:00 UTC.
    before = registry.version_at("prh-customer-service", datetime(2021, 10, 19, 20, 59, 59, tzinfo=UTC))
    after = registry.version_at("prh-customer-service", datetime(2021, 10, 19, 21, 0, tzinfo=UTC))
    assert before is not None and before.version == "2018-05-25"
    assert after is not None and after.version == "2021-10-20"


def test_nothing_before_the_register_began(registry: PolicyRegistry) -> None:
    # 1.10.2017 00:00 in Helsinki is 30.9.2017 21:00 UTC.
    assert registry.version_at("prh-customer-service", datetime(2017, 9, 30, 20, 59, tzinfo=UTC)) is None
    first = registry.version_at("prh-customer-service", datetime(2017, 9, 30, 21, 0, tzinfo=UTC))
    assert first is not None and first.version == "2018-05-25"
    assert registry.version_at("statfi-chat", datetime(2018, 5, 22, 12, 0, tzinfo=HELSINKI)) is None


def test_register_level_helpers(registry: PolicyRegistry) -> None:
    prh = registry.get("prh-customer-service")
    assert prh.starts_at() == date(2017, 10, 1)
    assert prh.forbidden_fields_any_version() == frozenset({"personal_identity_code"})
    assert registry.get("hsy-customer-service").forbidden_fields_any_version() == frozenset()


def test_version_at_needs_an_aware_datetime(registry: PolicyRegistry) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        registry.version_at("prh-customer-service", datetime(2022, 1, 1))


def test_unknown_register_and_version(registry: PolicyRegistry) -> None:
    with pytest.raises(UnknownRegister) as info:
        registry.get("kela-chat")
    assert isinstance(info.value, KeyError)
    assert "kela-chat" in str(info.value) and "statfi-chat" in str(info.value)
    with pytest.raises(UnknownRegister):
        registry.version_at("kela-chat", datetime(2022, 1, 1, tzinfo=UTC))
    with pytest.raises(UnknownPolicyVersion):
        registry.version("prh-customer-service", "1999-01-01")


# (register, version id, class, period, trigger, action)
SEED_RULES = [
    ("prh-customer-service", "2018-05-25", "recording", "P6M", "contact_start", "delete"),
    ("prh-customer-service", "2018-05-25", "contact_history", "P12M", "contact_start", "delete"),
    ("prh-customer-service", "2018-05-25", "messages", "P2Y", "contact_start", "delete"),
    ("prh-customer-service", "2018-05-25", "participant_data", "P2Y", "contact_start", "delete"),
    ("prh-customer-service", "2021-10-20", "recording", "P6M", "contact_start", "delete"),
    ("prh-customer-service", "2021-10-20", "contact_history", "P12M", "contact_start", "delete"),
    ("prh-customer-service", "2021-10-20", "messages", "P2Y", "contact_start", "delete"),
    ("prh-customer-service", "2021-10-20", "chatbot_identifiers", "PT1H", "message_sent", "redact"),
    ("prh-customer-service", "2021-10-20", "survey_answers", "P12M", "contact_start", "delete"),
    ("prh-beneficial-owner-customers", "2021-10-20", "identification", "P5Y", "contact_start", "delete"),
    ("dvv-personal-customer-service", "2020-01-01", "case_data", "P1Y", "case_closed", "delete"),
    ("dvv-personal-customer-service", "2020-01-01", "messages", "P1Y", "case_closed", "delete"),
    ("dvv-personal-customer-service", "2020-01-01", "contact_history", "P1Y", "case_closed", "delete"),
    ("dvv-personal-customer-service", "2020-01-01", "attachments", "P1Y", "case_closed", "delete"),
    ("dvv-personal-customer-service", "2020-01-01", "survey_answers", "P1Y", "case_closed", "delete"),
    ("dvv-personal-customer-service", "2020-01-01", "recording", "P1Y", "contact_end", "delete"),
    ("statfi-chat", "2018-05-23", "messages", "P35D", "contact_start", "delete"),
    ("statfi-chat", "2018-05-23", "participant_data", "P35D", "contact_start", "delete"),
    ("statfi-chat", "2018-05-23", "contact_history", "P35D", "contact_start", "delete"),
    ("hsy-customer-service", "2018-05-25", "recording", "P12M", "contact_start", "delete"),
    ("hsy-customer-service", "2018-05-25", "contact_history", "P12M", "contact_start", "delete"),
    ("hsy-customer-service", "2018-05-25", "messages", "P12M", "contact_start", "delete"),
    ("hsy-customer-service", "2018-05-25", "attachments", "P12M", "contact_start", "delete"),
    ("hsy-customer-service", "2018-05-25", "participant_data", "P12M", "contact_start", "delete"),
    ("hsy-customer-service", "2018-05-25", "case_data", "P12M", "contact_start", "delete"),
]


@pytest.mark.parametrize(
    ("register", "version_id", "artifact_class", "period", "trigger", "action"), SEED_RULES
)
def test_seed_retention_rule(
    registry: PolicyRegistry,
    register: str,
    version_id: str,
    artifact_class: str,
    period: str,
    trigger: str,
    action: str,
) -> None:
    rule = registry.version(register, version_id).retention_for(artifact_class)
    assert rule is not None
    assert rule.period == Period.parse(period)
    assert str(rule.period) == period
    assert rule.trigger == Trigger(trigger)
    assert rule.action == Action(action)


def test_each_version_keeps_exactly_the_seed_classes(registry: PolicyRegistry) -> None:
    expected: dict[tuple[str, str], set[str]] = {}
    for register, version_id, artifact_class, *_ in SEED_RULES:
        expected.setdefault((register, version_id), set()).add(artifact_class)
    actual = {
        (register, version.version): {c.value for c in version.classes}
        for register in registry.registers()
        for version in registry.get(register).versions
    }
    assert actual == expected


def test_intake_rules(registry: PolicyRegistry) -> None:
    for prh in registry.get("prh-customer-service").versions:
        assert "personal_identity_code" in prh.intake.forbidden_fields
        assert prh.intake.register_start == date(2017, 10, 1)
        assert prh.intake.store_restricted_caller_number is True
    hsy = registry.latest("hsy-customer-service")
    assert hsy.intake.store_restricted_caller_number is False
    assert {d.value for d in hsy.intake.call_directions} == {"inbound", "outbound"}
    beneficial = registry.latest("prh-beneficial-owner-customers")
    assert [e.value for e in beneficial.intake.event_types] == ["identification"]
    assert "personal_identity_code" not in beneficial.intake.forbidden_fields
    dvv = registry.latest("dvv-personal-customer-service")
    assert dvv.intake.accepts("case.closed") and dvv.intake.accepts("email.received")
    assert not registry.latest("statfi-chat").intake.accepts("call.started")


def test_rights_and_legal_basis(registry: PolicyRegistry) -> None:
    dvv = registry.latest("dvv-personal-customer-service")
    assert {g.ground for g in dvv.legal_basis} == {LegalBasis.PUBLIC_TASK, LegalBasis.LEGAL_OBLIGATION}
    assert any(g.law and "571/2016" in g.law for g in dvv.legal_basis)
    assert dvv.rights.erasure.status is RightStatus.REFUSED
    assert dvv.rights.erasure.ground is not None and "17(3)(b)" in dvv.rights.erasure.ground
    assert dvv.rights.portability.status is RightStatus.REFUSED
    assert dvv.rights.portability.ground is not None and "20(1)" in dvv.rights.portability.ground
    assert dvv.rights.of("objection").status is RightStatus.CONDITIONAL
    assert dvv.rights.identity_verification.value == "required"

    prh = registry.latest("prh-customer-service")
    assert prh.legal_basis[0].ground is LegalBasis.LEGAL_OBLIGATION
    assert prh.legal_basis[0].article == "GDPR Art. 6(1)(c)"
    assert prh.rights.access.status is RightStatus.GRANTED
    assert prh.rights.rectification.status is RightStatus.GRANTED
    assert prh.rights.restriction.status is RightStatus.CONDITIONAL

    hsy = registry.latest("hsy-customer-service")
    assert hsy.rights.objection.status is RightStatus.CONDITIONAL
    assert hsy.rights.erasure.status is RightStatus.CONDITIONAL


def test_recipients_transfers_and_access(registry: PolicyRegistry) -> None:
    for prh in registry.get("prh-customer-service").versions:
        (institute,) = prh.recipients
        assert institute.kind.value == "research_institute"
        assert institute.temporary_loan and institute.return_or_destroy
        assert ArtifactClass.RECORDING in institute.artifact_classes
    statfi = registry.latest("statfi-chat")
    assert statfi.transfers_outside_eea.allowed is True
    assert Safeguard.STANDARD_CONTRACTUAL_CLAUSES in statfi.transfers_outside_eea.safeguards
    for register in REGISTERS - {"statfi-chat"}:
        assert registry.latest(register).transfers_outside_eea.allowed is False
    hsy = registry.latest("hsy-customer-service")
    assert hsy.access.agents_see_only_own_contacts is True
    assert {"manager", "system_administrator"} <= set(hsy.access.listen_roles)
    assert statfi.access.listen_roles == ()


def test_policies_are_frozen(registry: PolicyRegistry) -> None:
    version = registry.latest("prh-customer-service")
    with pytest.raises(pydantic.ValidationError):
        version.effective_from = date(2000, 1, 1)  # type: ignore[misc]


# --------------------------------------------------------------------------------------------------- Period


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("P6M", Period(months=6)),
        ("P12M", Period(months=12)),
        ("P2Y", Period(years=2)),
        ("P5Y", Period(years=5)),
        ("P1Y", Period(years=1)),
        ("P35D", Period(days=35)),
        ("PT1H", Period(hours=1)),
        ("PT90M", Period(minutes=90)),
        ("P1Y2M3DT4H5M", Period(1, 2, 3, 4, 5)),
        ("P5W", Period(days=35)),
    ],
)
def test_period_parses_iso_8601(text: str, expected: Period) -> None:
    assert Period.parse(text) == expected


def test_period_keeps_calendar_months() -> None:
    period = Period.parse("P6M")
    assert (period.months, period.days) == (6, 0)
    assert str(period) == "P6M"
    assert str(Period.parse("P1Y2M3DT4H5M")) == "P1Y2M3DT4H5M"


@pytest.mark.parametrize(
    "text", ["6M", "P", "PT", "P1.5Y", "p6m", "P6X", "-P1D", "PT30S", "P0D", "P1000Y", "P1MT"]
)
def test_period_refuses_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        Period.parse(text)


# ------------------------------------------------------------------------------------------------ bad files


@pytest.fixture
def statfi_raw() -> dict[str, Any]:
    loaded = yaml.safe_load((POLICY_DIR / "statfi-chat.yaml").read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture
def prh_raw() -> dict[str, Any]:
    loaded = yaml.safe_load((POLICY_DIR / "prh-customer-service.yaml").read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def _write(directory: Path, name: str, raw: dict[str, Any]) -> Path:
    path = directory / name
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def _refused(path: Path) -> PolicyError:
    with pytest.raises(PolicyError) as info:
        load_policies(path.parent)
    error = info.value
    assert error.file == str(path)
    assert str(path) in str(error) and error.path in str(error) and error.reason in str(error)
    return error


def test_the_test_base_is_valid(tmp_path: Path, statfi_raw: dict[str, Any]) -> None:
    registry = load_policies(_write(tmp_path, "statfi-chat.yaml", statfi_raw).parent)
    assert registry.registers() == ["statfi-chat"]


def test_unknown_field(tmp_path: Path, statfi_raw: dict[str, Any]) -> None:
    statfi_raw["versions"][0]["retention"][1]["colour"] = "red"
    error = _refused(_write(tmp_path, "statfi-chat.yaml", statfi_raw))
    assert error.path == "versions[0].retention[1].colour"
    assert "unknown field" in error.reason
    assert error.more == ()  # no follow-on noise such as "versions: too short"


def test_bad_duration(tmp_path: Path, statfi_raw: dict[str, Any]) -> None:
    statfi_raw["versions"][0]["retention"][2]["period"] = "35 days"
    error = _refused(_write(tmp_path, "statfi-chat.yaml", statfi_raw))
    assert error.path == "versions[0].retention[2].period"
    assert "'35 days' is not an ISO 8601 duration" in error.reason


def test_unknown_class(tmp_path: Path, statfi_raw: dict[str, Any]) -> None:
    statfi_raw["versions"][0]["retention"][1]["class"] = "voicemail"
    error = _refused(_write(tmp_path, "statfi-chat.yaml", statfi_raw))
    assert error.path == "versions[0].retention[1].class"
    assert "unknown artifact class 'voicemail'" in error.reason
    assert "recording" in error.reason  # the reason lists what is allowed


def test_unknown_trigger(tmp_path: Path, statfi_raw: dict[str, Any]) -> None:
    statfi_raw["versions"][0]["retention"][0]["trigger"] = "chat_opened"
    error = _refused(_write(tmp_path, "statfi-chat.yaml", statfi_raw))
    assert error.path == "versions[0].retention[0].trigger"
    assert "unknown trigger 'chat_opened'" in error.reason


def test_unknown_event_type(tmp_path: Path, statfi_raw: dict[str, Any]) -> None:
    statfi_raw["versions"][0]["intake"]["event_types"].append("chat.typing")
    error = _refused(_write(tmp_path, "statfi-chat.yaml", statfi_raw))
    assert error.path == "versions[0].intake.event_types[3]"
    assert "unknown event type 'chat.typing'" in error.reason


def test_duplicate_effective_from(tmp_path: Path, prh_raw: dict[str, Any]) -> None:
    prh_raw["versions"][1]["effective_from"] = prh_raw["versions"][0]["effective_from"]
    error = _refused(_write(tmp_path, "prh-customer-service.yaml", prh_raw))
    assert error.path == "versions[1].effective_from"
    assert "duplicate effective_from 2017-10-01" in error.reason


def test_versions_out_of_order(tmp_path: Path, prh_raw: dict[str, Any]) -> None:
    prh_raw["versions"].reverse()
    error = _refused(_write(tmp_path, "prh-customer-service.yaml", prh_raw))
    assert error.path == "versions[1].effective_from"
    assert "effective-date order" in error.reason


def test_register_id_must_match_file_name(tmp_path: Path, statfi_raw: dict[str, Any]) -> None:
    error = _refused(_write(tmp_path, "statistics-chat.yaml", statfi_raw))
    assert error.path == "register"
    assert "'statfi-chat' does not match the file name 'statistics-chat.yaml'" in error.reason


def test_malformed_yaml(tmp_path: Path) -> None:
    path = tmp_path / "statfi-chat.yaml"
    path.write_text(
        "format_version: 1\nregister: statfi-chat\nversions: [\n  - version: 1\n", encoding="utf-8"
    )
    error = _refused(path)
    assert error.path.startswith("line ")
    assert "malformed YAML" in error.reason


def test_duplicate_yaml_key(tmp_path: Path) -> None:
    text = (POLICY_DIR / "statfi-chat.yaml").read_text(encoding="utf-8")
    path = tmp_path / "statfi-chat.yaml"
    path.write_text(
        text.replace("format_version: 1\n", "format_version: 1\nformat_version: 1\n"), encoding="utf-8"
    )
    error = _refused(path)
    assert "duplicate key 'format_version'" in error.reason


def test_class_listed_twice(tmp_path: Path, statfi_raw: dict[str, Any]) -> None:
    retention = statfi_raw["versions"][0]["retention"]
    retention.append(copy.deepcopy(retention[0]) | {"period": "P30D"})
    error = _refused(_write(tmp_path, "statfi-chat.yaml", statfi_raw))
    assert error.path == "versions[0].retention[3].class"
    assert "listed twice" in error.reason


def test_missing_field(tmp_path: Path, statfi_raw: dict[str, Any]) -> None:
    del statfi_raw["versions"][0]["retention"][0]["action"]
    error = _refused(_write(tmp_path, "statfi-chat.yaml", statfi_raw))
    assert error.path == "versions[0].retention[0].action"
    assert "missing" in error.reason


@pytest.mark.parametrize(
    ("change", "path", "reason"),
    [
        (
            lambda v: v["retention"][0].update(trigger="case_closed"),
            "versions[0].retention[0].trigger",
            "case_closed needs intake to accept case.closed",
        ),
        (
            lambda v: v["retention"][0].update(action="redact"),
            "versions[0].retention[0].action",
            "redact applies to field-level classes only",
        ),
        (
            lambda v: v["data_categories"][0].update(artifact_classes=["recording"]),
            "versions[0].data_categories[0].artifact_classes[0]",
            "has no retention rule",
        ),
        (
            lambda v: v["rights"]["erasure"].pop("ground"),
            "versions[0].rights.erasure",
            "needs its legal ground",
        ),
        (
            lambda v: v["transfers_outside_eea"].update(safeguards=[]),
            "versions[0].transfers_outside_eea",
            "at least one safeguard",
        ),
        (
            lambda v: v.update(time_zone="Europe/Nowhere"),
            "versions[0].time_zone",
            "Europe/Nowhere",
        ),
        (
            lambda v: v.update(effective_from="2018-05-23T00:00:00"),
            "versions[0].effective_from",
            "date",
        ),
        (
            lambda v: v["intake"].update(store_restricted_caller_number="no"),
            "versions[0].intake.store_restricted_caller_number",
            "boolean",
        ),
        (
            lambda v: v["channels"].append("chat"),
            "versions[0].channels",
            "duplicate entry 'chat'",
        ),
        (
            lambda v: v["access"].update(listen_roles=["manager"]),
            "versions[0].access.listen_roles",
            "keeps no recordings",
        ),
        (
            lambda v: v["intake"]["event_types"].append("call.started"),
            "versions[0].intake.event_types[3]",
            "channels does not list 'phone'",
        ),
    ],
)
def test_cross_field_and_value_rules(
    tmp_path: Path, statfi_raw: dict[str, Any], change: Any, path: str, reason: str
) -> None:
    change(statfi_raw["versions"][0])
    error = _refused(_write(tmp_path, "statfi-chat.yaml", statfi_raw))
    assert error.path == path
    assert reason in error.reason


def test_business_id_check_digit(tmp_path: Path) -> None:
    raw = yaml.safe_load((POLICY_DIR / "hsy-customer-service.yaml").read_text(encoding="utf-8"))
    raw["versions"][0]["controller"]["business_id"] = "2274241-8"
    error = _refused(_write(tmp_path, "hsy-customer-service.yaml", raw))
    assert error.path == "versions[0].controller.business_id"
    assert "check digit" in error.reason


def test_first_bad_file_is_named_among_good_ones(tmp_path: Path, statfi_raw: dict[str, Any]) -> None:
    for source in POLICY_DIR.glob("*.yaml"):
        (tmp_path / source.name).write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    statfi_raw["versions"][0]["retention"][0]["period"] = "P35"
    bad = _write(tmp_path, "statfi-chat.yaml", statfi_raw)
    error = _refused(bad)
    assert error.path == "versions[0].retention[0].period"


def test_reference_to_unknown_register(tmp_path: Path, prh_raw: dict[str, Any]) -> None:
    # The PRH 2021 version names prh-beneficial-owner-customers as the home of identification data.
    path = _write(tmp_path, "prh-customer-service.yaml", prh_raw)
    error = _refused(path)
    assert error.path == "versions[1].data_categories[7].stored_in_register"
    assert "prh-beneficial-owner-customers" in error.reason


def test_yml_file_is_not_silently_ignored(tmp_path: Path, statfi_raw: dict[str, Any]) -> None:
    _write(tmp_path, "statfi-chat.yaml", statfi_raw)
    stray = _write(tmp_path, "hsy-customer-service.yml", statfi_raw)
    error = _refused(stray)
    assert "would be ignored" in error.reason


def test_empty_or_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match=r"no \*\.yaml policy files"):
        load_policies(tmp_path)
    with pytest.raises(PolicyError, match="does not exist"):
        load_policies(tmp_path / "nope")


def test_single_file_loader(statfi_raw: dict[str, Any]) -> None:
    policy = load_policy_file(POLICY_DIR / "statfi-chat.yaml")
    assert policy.register == statfi_raw["register"]
    assert policy.latest.version == "2018-05-23"
