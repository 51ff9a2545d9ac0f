"""The wording catalogue of the DSR letters: complete for the code, and refused by name when it is not."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.dsr import letters
from services.dsr.letters import LANGUAGES, ExtensionReason, LiftReason, LoanStatus, Outcome, StatutoryGround
from services.dsr.wording import Catalogue, CatalogueError, Phrase
from shared.contracts.vocabulary import ArtifactClass
from shared.policy.model import Action, LegalBasis, RecipientKind, RightName, RightStatus, Safeguard, Trigger

WORDING = Path(letters.__file__).with_name("wording")


def _render(phrase: Phrase, language: str) -> str:
    return phrase(language, **{name: f"<{name}>" for name in phrase.placeholders})


# ------------------------------------------------------------------------------------- the real catalogue


def test_the_catalogue_ships_beside_the_module() -> None:
    assert sorted(p.name for p in WORDING.glob("*.yaml")) == [
        "access.yaml",
        "decision.yaml",
        "extension.yaml",
        "letter.yaml",
        "no_data.yaml",
        "restriction_lifted.yaml",
        "terms.yaml",
    ]
    letters._WORDING.read(WORDING)


TABLES: list[tuple[str, type[StrEnum]]] = [
    ("_CLASSES", ArtifactClass),
    ("_TRIGGERS", Trigger),
    ("_ACTIONS", Action),
    ("_LEGAL_BASES", LegalBasis),
    ("_RECIPIENT_KINDS", RecipientKind),
    ("_SAFEGUARDS", Safeguard),
    ("_RIGHTS", RightName),
    ("_ASKED", RightName),
    ("_STATUSES", RightStatus),
    ("_STATUS_GROUND_LABEL", RightStatus),
    ("_LOAN_STATUSES", LoanStatus),
    ("_OUTCOMES", Outcome),
    ("_STATUTORY_GROUNDS", StatutoryGround),
    ("_EXTENSION_REASONS", ExtensionReason),
    ("_LIFT_REASONS", LiftReason),
]


@pytest.mark.parametrize(("table", "enum"), TABLES, ids=[name for name, _ in TABLES])
def test_every_enum_member_has_its_phrase_in_every_language(table: str, enum: type[StrEnum]) -> None:
    phrases: Mapping[StrEnum, Phrase] = getattr(letters, table)
    assert set(phrases) == set(enum)
    for member in enum:
        texts = {lang: _render(phrases[member], lang) for lang in LANGUAGES}
        assert all(text.strip() for text in texts.values()), (member, texts)


def test_every_phrase_renders_in_its_languages() -> None:
    assert len(letters._WORDING.phrases) > 150
    for phrase in letters._WORDING.phrases:
        assert set(phrase.languages) <= set(LANGUAGES)
        for lang in phrase.languages:
            text = _render(phrase, lang)
            assert text and text == text.strip() and "\n" not in text, phrase
            assert "{" not in text and "}" not in text, phrase


def test_a_phrase_takes_exactly_its_placeholders() -> None:
    with pytest.raises(TypeError, match="opening"):
        letters._EXTENSION_OPENING(LANGUAGES[0], asked="x", art="y", last_day="z")
    with pytest.raises(ValueError, match="no en phrase"):
        letters._ENGLISH_QUOTED("en")


# --------------------------------------------------------------------- a broken copy of the real catalogue


def _broken_copy(tmp_path: Path, file: str, edit: Callable[[dict[str, Any]], None]) -> Path:
    directory = tmp_path / "wording"
    shutil.copytree(WORDING, directory, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    document = yaml.safe_load((directory / file).read_text(encoding="utf-8"))
    edit(document)
    (directory / file).write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    return directory


def _problems(directory: Path) -> str:
    with pytest.raises(CatalogueError) as caught:
        letters._WORDING.read(directory)
    return str(caught.value)


def test_a_missing_translation_is_refused_with_file_and_key(tmp_path: Path) -> None:
    directory = _broken_copy(
        tmp_path, "terms.yaml", lambda d: d["retention_triggers"]["case_closed"].pop("sv")
    )
    assert f"{directory / 'terms.yaml'}: retention_triggers.case_closed: no sv phrase" in _problems(directory)


def test_a_missing_enum_member_is_refused_with_file_and_key(tmp_path: Path) -> None:
    directory = _broken_copy(tmp_path, "decision.yaml", lambda d: d["statutory_grounds"].pop("data_accurate"))
    assert f"{directory / 'decision.yaml'}: statutory_grounds.data_accurate: missing" in _problems(directory)


def test_an_unknown_key_is_refused_with_file_and_key(tmp_path: Path) -> None:
    def add(document: dict[str, Any]) -> None:
        document["artifact_classes"]["hologram"] = {"fi": "hologrammi", "sv": "hologram", "en": "hologram"}

    directory = _broken_copy(tmp_path, "terms.yaml", add)
    assert f"{directory / 'terms.yaml'}: artifact_classes.hologram: unknown key" in _problems(directory)


def test_a_placeholder_the_code_does_not_supply_is_refused_with_file_and_key(tmp_path: Path) -> None:
    def rename(document: dict[str, Any]) -> None:
        document["opening"]["en"] = document["opening"]["en"].replace("{new_last_day}", "{deadline}")

    directory = _broken_copy(tmp_path, "extension.yaml", rename)
    problems = _problems(directory)
    assert f"{directory / 'extension.yaml'}: opening.en: unknown placeholder {{deadline}}" in problems
    # Dropping the new deadline from a letter is as wrong as naming one the code cannot fill in.
    assert f"{directory / 'extension.yaml'}: opening.en: leaves out {{new_last_day}}" in problems


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    directory = _broken_copy(tmp_path, "letter.yaml", lambda d: d["header"].pop("salutation"))
    (directory / "de.yaml").write_text("subject: {de: Antwort}\n", encoding="utf-8")
    (directory / "no_data.yaml").unlink()
    problems = _problems(directory)
    assert f"{directory / 'letter.yaml'}: header.salutation: missing" in problems
    assert f"{directory / 'de.yaml'}: not a file of the catalogue" in problems
    assert f"{directory / 'no_data.yaml'}: missing" in problems


# ----------------------------------------------------------------------------------- the loader's checks


class Colour(StrEnum):
    RED = "red"
    GREEN = "green"


def _catalogue(directory: Path) -> tuple[Catalogue, Phrase, Phrase, Mapping[Colour, Phrase]]:
    catalogue = Catalogue(directory, ("fi", "sv", "en"))
    part = catalogue.part("notice.yaml")
    greeting = part.phrase("greeting")
    deadline = part.phrase("body.deadline", "deadline", "dash", optional=["dash"])
    colours = part.table("colours", Colour)
    return catalogue, greeting, deadline, colours


GOOD = """\
greeting: {fi: Hei, sv: Hej, en: Hello}
body:
  deadline:
    fi: "Vastaamme {deadline}{dash}."
    sv: "Vi svarar {deadline}{dash}."
    en: >-
      We will answer by
      {deadline}.
colours:
  red: {fi: punainen, sv: röd, en: red}
  green: {fi: vihreä, sv: grön, en: green}
"""


def test_a_good_catalogue_loads(tmp_path: Path) -> None:
    (tmp_path / "notice.yaml").write_text(GOOD, encoding="utf-8")
    catalogue, greeting, deadline, colours = _catalogue(tmp_path)
    catalogue.load()
    assert greeting("sv") == "Hej"
    assert deadline("en", deadline="1 May", dash="-") == "We will answer by 1 May."
    assert deadline("fi", deadline="1.5.", dash="-") == "Vastaamme 1.5.-."
    assert colours[Colour.GREEN]("fi") == "vihreä"


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("sv: Hej, ", "", "greeting: no sv phrase"),
        ("en: Hello", "en: Hello, de: Hallo", "greeting.de: unknown key"),
        ("  green: {fi: vihreä, sv: grön, en: green}\n", "", "colours.green: missing"),
        ("green:", "blue:", "colours.blue: unknown key"),
        (
            '{deadline}{dash}."\n    sv',
            '{dead_line}{dash}."\n    sv',
            "body.deadline.fi: unknown placeholder {dead_line}",
        ),
        ('{deadline}{dash}."\n    sv', '{dash}."\n    sv', "body.deadline.fi: leaves out {deadline}"),
        (
            '"Vi svarar {deadline}{dash}."',
            '"Vi svarar {deadline!r}."',
            "body.deadline.sv: {deadline!r} is not",
        ),
        ('"Vi svarar {deadline}{dash}."', '"Vi svarar {deadline} {."', "body.deadline.sv: has a lone {"),
        ("en: Hello", "en: no", "greeting.en: must be text, not False"),
        ("en: Hello", "en:", "greeting.en: empty"),
        ("en: Hello", 'en: "Hello "', "greeting.en: must be one line"),
        ("en: Hello", 'en: "Hel\\nlo"', "greeting.en: must be one line"),
        ("greeting: {fi: Hei, sv: Hej, en: Hello}", "greeting: Hei", "greeting: must give the phrase"),
        ("body:\n  deadline:", "body: 1\nunused:\n  deadline:", "body: must be a group of keys"),
        (
            "colours:\n  red:",
            "colours:\n  green: {fi: a, sv: b, en: c}\n  red:",
            "the key 'green' appears twice",
        ),
        ("greeting: {", "greeting: [", "not readable as YAML"),
    ],
)
def test_a_broken_file_is_refused_naming_file_and_key(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    assert old in GOOD
    (tmp_path / "notice.yaml").write_text(GOOD.replace(old, new, 1), encoding="utf-8")
    catalogue, greeting, *_ = _catalogue(tmp_path)
    with pytest.raises(CatalogueError) as caught:
        catalogue.load()
    assert f"{tmp_path / 'notice.yaml'}: " in str(caught.value)
    assert expected in str(caught.value)
    with pytest.raises(RuntimeError, match="not loaded"):
        greeting("fi")


def test_declarations_do_not_overlap(tmp_path: Path) -> None:
    catalogue, *_ = _catalogue(tmp_path)
    part = catalogue.part("notice.yaml")
    with pytest.raises(ValueError, match="declared twice"):
        part.phrase("greeting")
    with pytest.raises(ValueError, match="inside another phrase"):
        part.phrase("greeting.fi")
    with pytest.raises(ValueError, match="optional"):
        part.phrase("other", "a", optional=["b"])
