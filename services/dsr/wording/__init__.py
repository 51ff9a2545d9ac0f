"""The wording catalogue of the letters to data subjects, and the check that it fits the code.

The phrases live in the YAML files beside this module, one file per letter kind (plus one for the frame every
letter shares and one for the terms several letters use), with the Finnish, Swedish and English form of each
phrase side by side. Side by side rather than one file per language because whoever reviews a letter, a
translator or a lawyer, checks that the three parts say the same thing: a missing or drifted translation then
shows next to its siblings, and a phrase is reviewed in the company of the letter it belongs to.

The code declares every phrase it uses (`Catalogue.part(...).phrase` and `.table`) with the placeholders it
fills in; `Catalogue.load` then reads the files once and refuses them, naming the file and the key, when a
phrase is missing in a language, a key or a file is not one the code reads, or a phrase has a placeholder the
code does not supply or leaves out one it must show (a translation that dropped `{new_last_day}` would send a
letter without its deadline). Every problem is reported at once, so one round of fixes is enough.
"""

from __future__ import annotations

import string
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

import yaml

__all__ = ["Catalogue", "CatalogueError", "Part", "Phrase"]

Key = tuple[str, ...]
Member = TypeVar("Member", bound=str)

_CATALOGUE_SUFFIXES = (".yaml", ".yml")


class CatalogueError(ValueError):
    """The catalogue does not fit the code; `problems` name each by file and key."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("the wording catalogue is not usable:\n" + "\n".join(f"- {p}" for p in problems))


@dataclass(frozen=True, slots=True)
class _Slot:
    """What the code expects at one key: the languages it asks for and the placeholders it fills in."""

    file: str
    key: Key
    languages: tuple[str, ...]
    placeholders: frozenset[str]
    optional: frozenset[str]

    @property
    def where(self) -> str:
        return ".".join(self.key)


class Phrase:
    """One phrase of the catalogue; call it with a language and exactly the values of its placeholders."""

    __slots__ = ("_slot", "_texts")

    def __init__(self, slot: _Slot) -> None:
        self._slot = slot
        self._texts: Mapping[str, str] | None = None

    @property
    def placeholders(self) -> frozenset[str]:
        return self._slot.placeholders

    @property
    def languages(self) -> tuple[str, ...]:
        return self._slot.languages

    def __call__(self, language: str, /, **values: object) -> str:
        if self._texts is None:
            raise RuntimeError(f"{self._slot.file}: {self._slot.where}: the catalogue is not loaded yet")
        if values.keys() != self._slot.placeholders:
            # The declaration is what load() checked the files against, so the code must keep to it.
            raise TypeError(
                f"{self._slot.file}: {self._slot.where} is declared with {sorted(self._slot.placeholders)}, "
                f"called with {sorted(values)}"
            )
        try:
            template = self._texts[language]
        except KeyError:
            raise ValueError(f"{self._slot.file}: {self._slot.where} has no {language} phrase") from None
        # Always formatted, so `{{` reads as a literal brace in every phrase, with placeholders or without.
        return template.format(**values)

    def __repr__(self) -> str:
        return f"Phrase({self._slot.file}: {self._slot.where})"


class Part:
    """The declarations of one file of the catalogue."""

    __slots__ = ("_catalogue", "_file")

    def __init__(self, catalogue: Catalogue, file: str) -> None:
        self._catalogue = catalogue
        self._file = file

    def phrase(
        self,
        key: str,
        *placeholders: str,
        optional: Iterable[str] = (),
        languages: Sequence[str] | None = None,
    ) -> Phrase:
        """The phrase at `key` (dotted for groups). Every language's form must show each placeholder except
        the `optional` ones; `languages` narrows a phrase that only some parts of a letter use."""
        return self._catalogue._declare(
            self._file, tuple(key.split(".")), placeholders, frozenset(optional), languages
        )

    def table(self, key: str, members: Iterable[Member], *placeholders: str) -> Mapping[Member, Phrase]:
        """One phrase per member (an enum's members: keyed in the file by their values) under `key`."""
        group = tuple(key.split("."))
        return MappingProxyType(
            {
                member: self._catalogue._declare(
                    self._file, (*group, str(member)), placeholders, frozenset(), None
                )
                for member in members
            }
        )


class Catalogue:
    """The phrases a module declares, and the files in `directory` that hold them."""

    def __init__(self, directory: Path, languages: Sequence[str]) -> None:
        self.directory = directory
        self.languages = tuple(str(language) for language in languages)
        self._phrases: dict[tuple[str, Key], Phrase] = {}

    def part(self, file: str) -> Part:
        return Part(self, file)

    @property
    def phrases(self) -> tuple[Phrase, ...]:
        return tuple(self._phrases.values())

    def _declare(
        self,
        file: str,
        key: Key,
        placeholders: Iterable[str],
        optional: frozenset[str],
        languages: Sequence[str] | None,
    ) -> Phrase:
        supplied = frozenset(placeholders)
        if not optional <= supplied:
            raise ValueError(f"{file}: {'.'.join(key)}: optional placeholders must be among those supplied")
        wanted = self.languages if languages is None else tuple(str(language) for language in languages)
        if not set(wanted) <= set(self.languages):
            raise ValueError(f"{file}: {'.'.join(key)}: unknown language in {wanted}")
        for declared_file, declared in self._phrases:
            shorter = min(len(key), len(declared))
            if declared_file == file and key[:shorter] == declared[:shorter]:
                raise ValueError(f"{file}: {'.'.join(key)} is declared twice or inside another phrase")
        phrase = Phrase(_Slot(file, key, wanted, supplied, optional))
        self._phrases[(file, key)] = phrase
        return phrase

    def load(self) -> None:
        """Read the catalogue from `directory` into the declared phrases; CatalogueError if it does not fit."""
        texts = self.read(self.directory)
        for address, phrase in self._phrases.items():
            phrase._texts = MappingProxyType(texts[address])

    def read(self, directory: Path) -> dict[tuple[str, Key], dict[str, str]]:
        """The phrases in `directory`, checked against the declarations; CatalogueError names every problem."""
        problems: list[str] = []
        texts: dict[tuple[str, Key], dict[str, str]] = {}
        files = sorted({file for file, _ in self._phrases})
        if directory.is_dir():
            for path in sorted(directory.iterdir()):
                if path.suffix in _CATALOGUE_SUFFIXES and path.name not in files:
                    problems.append(
                        f"{path}: not a file of the catalogue (the letters read {', '.join(files)})"
                    )
        for file in files:
            slots = {key: phrase._slot for (f, key), phrase in self._phrases.items() if f == file}
            found = _FileReader(directory / file, slots, problems).read()
            texts.update({(file, key): value for key, value in found.items()})
        if problems:
            raise CatalogueError(problems)
        return texts


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys without a word; in a catalogue that hides an edit."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Hashable, Any]:
    seen: set[Hashable] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if isinstance(key, Hashable):
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} appears twice", key_node.start_mark
                )
            seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


class _FileReader:
    def __init__(self, path: Path, slots: Mapping[Key, _Slot], problems: list[str]) -> None:
        self.path = path
        self.slots = slots
        self.problems = problems
        self.texts: dict[Key, dict[str, str]] = {}
        self.seen: set[Key] = set()

    def problem(self, key: Key, text: str) -> None:
        self.problems.append(f"{self.path}: {'.'.join(key)}: {text}" if key else f"{self.path}: {text}")

    def read(self) -> dict[Key, dict[str, str]]:
        try:
            # _UniqueKeyLoader is a SafeLoader: plain data only, no Python objects.
            with self.path.open(encoding="utf-8") as stream:
                document = yaml.load(stream, Loader=_UniqueKeyLoader)  # noqa: S506
        except FileNotFoundError:
            self.problem((), "missing")
            return {}
        except (yaml.YAMLError, UnicodeDecodeError) as error:
            self.problem((), f"not readable as YAML: {error}")
            return {}
        if not isinstance(document, dict):
            self.problem((), "must be a mapping of keys to phrases")
            return {}
        self.group(document, ())
        for key in self.slots:
            if key not in self.seen and not any(key[: len(s)] == s for s in self.seen):
                self.problem(key, f"missing (the code needs it in {', '.join(self.slots[key].languages)})")
        return self.texts

    def group(self, node: dict[Any, Any], prefix: Key) -> None:
        for name, value in node.items():
            if not isinstance(name, str):
                self.problem(prefix, f"the key {name!r} must be text: put it in quotes")
                continue
            key = (*prefix, name)
            slot = self.slots.get(key)
            if slot is not None:
                self.seen.add(key)
                self.phrase(slot, value)
            elif any(declared[: len(key)] == key for declared in self.slots):
                if isinstance(value, dict):
                    self.group(value, key)
                else:
                    self.seen.add(key)
                    self.problem(key, "must be a group of keys")
            else:
                self.problem(key, "unknown key: the code has no use for it (misspelt, or no longer used?)")

    def phrase(self, slot: _Slot, value: object) -> None:
        if not isinstance(value, dict):
            self.problem(slot.key, f"must give the phrase in each language: {', '.join(slot.languages)}")
            return
        texts: dict[str, str] = {}
        for language in slot.languages:
            if language not in value:
                self.problem(slot.key, f"no {language} phrase")
        for language, text in value.items():
            key = (*slot.key, str(language))
            if language not in slot.languages:
                self.problem(key, f"unknown key: this phrase is used in {', '.join(slot.languages)} only")
            elif not isinstance(text, str):
                self.problem(
                    key, "empty" if text is None else f"must be text, not {text!r}: put it in quotes"
                )
            elif self.text(slot, key, text):
                texts[language] = text
        if len(texts) == len(slot.languages):
            self.texts[slot.key] = texts

    def text(self, slot: _Slot, key: Key, text: str) -> bool:
        if not text.strip():
            self.problem(key, "empty")
            return False
        if text != text.strip() or any(not c.isprintable() for c in text):
            # The letters are assembled line by line; a stray line break or space would show in the letter.
            self.problem(key, "must be one line without leading or trailing spaces")
            return False
        try:
            fields = list(string.Formatter().parse(text))
        except ValueError:
            self.problem(key, "has a lone { or }: a placeholder is written {name}, a literal brace {{ or }}")
            return False
        used: set[str] = set()
        good = True
        for _, name, spec, conversion in fields:
            if name is None:
                continue
            if not name.isidentifier() or spec or conversion:
                self.problem(
                    key,
                    f"{{{name}{'!' + conversion if conversion else ''}{':' + spec if spec else ''}}} "
                    "is not a placeholder: write {name}",
                )
                good = False
            elif name not in slot.placeholders:
                supplied = ", ".join(f"{{{p}}}" for p in sorted(slot.placeholders)) or "none"
                self.problem(key, f"unknown placeholder {{{name}}}: the code supplies {supplied}")
                good = False
            else:
                used.add(name)
        left_out = slot.placeholders - slot.optional - used
        if left_out:
            self.problem(key, f"leaves out {', '.join(f'{{{p}}}' for p in sorted(left_out))}")
            good = False
        return good
