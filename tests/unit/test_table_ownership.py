"""Every table group has one owning package; nobody else names its tables in SQL or uses its ORM models.

docs/architecture.md states the rule. These tests read the source (no database): each string constant in the
.py files of services/, shared/ and deploy/ (the migrations aside: they create every table) is searched for
schema-qualified table names, and each name found outside its owner's package is a violation. Docstrings are
prose, not SQL, and are not searched; nor are comments, which `ast` does not see.

SQLAlchemy's lightweight `table("name", ..., schema="schema")` constructs are read too, so naming a table in
pieces does not hide it. An owner may publish a view as its read interface (PUBLISHED_VIEWS); anyone may read
a published view, and each must be created by a migration.
"""

from __future__ import annotations

import ast
import importlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("services", "shared", "deploy")
MIGRATIONS = ROOT / "deploy" / "migrations"

# PostgreSQL schema -> the one package that writes (and alone names) its tables.
OWNERS: dict[str, str] = {
    "records": "shared/recordstore",
    "keys": "shared/recordstore",
    "audit": "shared/audit",
    "outbox": "shared/messaging",
    "messaging": "shared/messaging",
    "policy": "shared/policy",
    "ingest": "services/ingest",
    "access": "services/ingest",
    "retention": "services/retention",
    "dsr": "services/dsr",
    "export": "services/export",
}

# Views an owner publishes as its read interface ("schema.view"): anyone may read them.
PUBLISHED_VIEWS: frozenset[str] = frozenset(
    {
        # When retention will delete each stored recording: export leaves out what would not outlive a study.
        "retention.recording_due_times",
    }
)

RECORDSTORE = "shared/recordstore"
RECORDSTORE_MODULE = "shared.recordstore"


def _tables() -> dict[str, str]:
    """Every mapped table ("schema.table") -> the module defining its model, for the modules the migration
    environment imports (it imports every table, so a new one cannot be missed here either)."""
    env = ast.parse((MIGRATIONS / "env.py").read_text(encoding="utf-8"))
    for node in env.body:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in SCANNED:
                    importlib.import_module(alias.name)
    from shared.platform.db import Base

    return {
        f"{mapper.local_table.schema}.{mapper.local_table.name}": mapper.class_.__module__
        for mapper in Base.registry.mappers
        if mapper.class_.__module__.split(".")[0] in SCANNED  # not a model some test defines
    }


def _views() -> set[str]:
    """Views the migrations create ("schema.view")."""
    created = re.compile(r"CREATE\s+(?:OR\s+REPLACE\s+)?(?:MATERIALIZED\s+)?VIEW\s+(\w+\.\w+)", re.IGNORECASE)
    return {
        name
        for path in (MIGRATIONS / "versions").glob("*.py")
        for name in created.findall(path.read_text(encoding="utf-8"))
    }


TABLES = _tables()
NAMES = sorted({*TABLES, *_views()}, key=len, reverse=True)
NAMED = re.compile(r"(?<![\w.])(" + "|".join(re.escape(name) for name in NAMES) + r")(?![\w])")
# A table of an owned schema chosen at run time: `FROM records.{table}` in an f-string.
DYNAMIC = re.compile(r"\b(?:FROM|JOIN|INTO|UPDATE|TABLE)\s+(" + "|".join(OWNERS) + r")\.$", re.IGNORECASE)


@dataclass(frozen=True)
class Use:
    file: str
    line: int
    table: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.table} (owned by {owner(self.table)})"


def owner(table: str) -> str:
    return OWNERS.get(table.split(".", 1)[0], "no owner")


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def table_names(source: str, file: str) -> Iterator[Use]:
    """Every schema-qualified table named in a string constant of `source` (docstrings aside)."""
    tree = ast.parse(source)
    docstrings = _docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            for name in set(NAMED.findall(node.value)):
                yield Use(file, node.lineno, name)
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            schema = next((k.value for k in node.keywords if k.arg == "schema"), None)
            if isinstance(schema, ast.Constant) and schema.value in OWNERS:
                yield Use(file, node.lineno, f"{schema.value}.{node.args[0].value}")
        elif isinstance(node, ast.JoinedStr):
            for piece, following in zip(node.values, node.values[1:], strict=False):
                if isinstance(piece, ast.Constant) and isinstance(following, ast.FormattedValue):
                    match = DYNAMIC.search(str(piece.value))
                    if match:
                        yield Use(file, node.lineno, f"{match.group(1)}.*")


def _sources() -> Iterator[tuple[str, str]]:
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*.py")):
            if MIGRATIONS in path.parents:
                continue
            yield path.relative_to(ROOT).as_posix(), path.read_text(encoding="utf-8")


def foreign_uses() -> list[Use]:
    """Table names used in SQL text outside the package that owns them."""
    return sorted(
        (
            use
            for file, source in _sources()
            for use in table_names(source, file)
            if use.table not in PUBLISHED_VIEWS and not file.startswith(owner(use.table) + "/")
        ),
        key=lambda use: (use.file, use.line, use.table),
    )


def _recordstore_models() -> set[str]:
    from shared.platform.db import Base

    return {
        mapper.class_.__name__
        for mapper in Base.registry.mappers
        if mapper.class_.__module__.startswith(RECORDSTORE_MODULE + ".")
    }


def model_imports(source: str, models: set[str]) -> Iterator[str]:
    """Names of record-store ORM models that `source` imports, or reaches through an imported module."""
    tree = ast.parse(source)
    modules: set[str] = set()  # the names under which a record-store module is bound
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                if node.module.startswith(RECORDSTORE_MODULE + ".") and alias.name in models:
                    yield alias.name
                elif node.module == RECORDSTORE_MODULE:
                    modules.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(RECORDSTORE_MODULE + "."):
                    modules.add(alias.asname or alias.name)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in models and ast.unparse(node.value) in modules:
            yield node.attr


def foreign_model_imports() -> set[tuple[str, str]]:
    models = _recordstore_models()
    return {
        (file, model)
        for file, source in _sources()
        if not file.startswith(RECORDSTORE + "/")
        for model in model_imports(source, models)
    }


def test_every_schema_has_one_owner_and_its_models_live_there() -> None:
    misplaced = []
    for table, module in sorted(TABLES.items()):
        schema = table.split(".", 1)[0]
        if schema not in OWNERS:
            misplaced.append(f"{table}: schema {schema!r} has no owner in OWNERS")
        elif not module.replace(".", "/").startswith(owner(table) + "/"):
            misplaced.append(f"{table}: model in {module}, but the schema belongs to {owner(table)}")
    assert not misplaced, "\n".join(misplaced)


def test_published_views_exist() -> None:
    unknown = sorted(PUBLISHED_VIEWS - _views())
    assert not unknown, f"published views that no migration creates: {unknown}"


def test_the_scan_finds_table_names_in_sql_text_only() -> None:
    source = '''
"""Reads records.contacts (a docstring: prose)."""
from sqlalchemy import text

# records.messages in a comment
LOG_EVENT = "retention.artifact_deleted"
QUERY = text("SELECT 1 FROM records.contacts AS c JOIN retention.schedule AS s USING (contact_ref)")
FK = "export.loans.loan_id"


def rows(table: str) -> str:
    """Not SQL: keys.data_keys."""
    return f"DELETE FROM records.{table} WHERE x IN (SELECT 1 FROM outbox.events)"


DUE = table("schedule", column("due_at"), schema="retention")
'''
    found = {(use.line, use.table) for use in table_names(source, "example.py")}
    assert found == {
        (7, "records.contacts"),
        (7, "retention.schedule"),
        (8, "export.loans"),
        (13, "records.*"),
        (13, "outbox.events"),
        (16, "retention.schedule"),
    }


def test_sql_text_names_only_its_own_packages_tables() -> None:
    new = [str(use) for use in foreign_uses()]
    assert not new, (
        "SQL text names another package's tables; call (or read a published view of) the owner instead:\n"
        + "\n".join(new)
    )


def test_the_scan_finds_record_store_models_however_imported() -> None:
    source = """
import shared.recordstore.store
from shared.recordstore import keystore as ks
from shared.recordstore.store import RecordStore
from shared.recordstore.models import Contact, sealed_aad

rows = [shared.recordstore.store.Party, ks.DataKey, Contact]
"""
    assert set(model_imports(source, _recordstore_models())) == {"Contact", "Party", "DataKey"}


def test_record_store_models_are_not_used_outside_the_record_store() -> None:
    new = sorted(foreign_model_imports())
    assert not new, (
        "ORM models of the records/keys tables imported outside shared/recordstore; use its functions:\n"
        + "\n".join(f"{file}: {model}" for file, model in new)
    )
