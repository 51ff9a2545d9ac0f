"""The wording catalogue loader: a catalogue that does not fit the code is refused, naming file and key."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path

import pytest

from services.dsr.wording import Catalogue, CatalogueError, Phrase

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
