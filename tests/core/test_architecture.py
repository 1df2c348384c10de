"""Dependency rules of docs/ARCHITECTURE.md, enforced so a violation fails CI, and its
"Where is X" table, every symbol of which must import, so the map cannot rot."""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

import ragtrail

CORE = Path(ragtrail.__file__).parent
STDLIB = set(sys.stdlib_module_names)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_schemas_import_only_stdlib_and_pydantic() -> None:
    offenders = {}
    for path in (CORE / "schemas").rglob("*.py"):
        # pydantic_core is pydantic's own engine, installed and pinned by pydantic.
        allowed = STDLIB | {"pydantic", "pydantic_core"}
        bad = {n for n in _imports(path) if n.split(".")[0] not in allowed}
        if bad:
            offenders[path.name] = bad
    assert not offenders


def test_core_never_imports_a_framework() -> None:
    offenders = {}
    for path in CORE.rglob("*.py"):
        bad = {n for n in _imports(path) if n.split(".")[0] in {"langchain_core", "langchain",
                                                               "llama_index"}}
        if bad:
            offenders[str(path.relative_to(CORE))] = bad
    assert not offenders


def test_import_linter_contracts_hold() -> None:
    root = Path(__file__).resolve().parents[2]
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint)], cwd=root, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "broken" not in result.stdout.lower().replace("0 broken", "")


def test_importing_schemas_does_not_load_sqlalchemy_or_frameworks() -> None:
    code = ("import sys, ragtrail.schemas; "
            "print(sorted(m for m in ('sqlalchemy','langchain_core','llama_index') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


ARCHITECTURE = Path(__file__).resolve().parents[2] / "docs" / "ARCHITECTURE.md"
_SYMBOL = re.compile(r"`([A-Za-z_][\w.]*):([A-Za-z_][\w.]*)`")


def _where_is_rows() -> dict[str, list[tuple[str, str]]]:
    text = ARCHITECTURE.read_text()
    section = text[text.index("## Where is X"):]
    end = section.find("\n## ", 1)
    rows: dict[str, list[tuple[str, str]]] = {}
    for line in (section if end < 0 else section[:end]).splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[0] not in ("What", "---"):
            rows[cells[0]] = _SYMBOL.findall(cells[1])
    return rows


def test_the_where_is_x_table_names_only_symbols_that_exist() -> None:
    rows = _where_is_rows()
    assert len(rows) >= 30
    missing = []
    for what, symbols in rows.items():
        assert symbols, f"row {what!r} names no module:symbol"
        for module_name, qualname in symbols:
            try:
                target: object = importlib.import_module(module_name)
                for part in qualname.split("."):
                    target = getattr(target, part)
            except (ImportError, AttributeError) as exc:
                missing.append(f"{what}: {module_name}:{qualname} ({exc})")
    assert not missing, missing


def test_the_where_is_x_table_covers_what_users_ask_about() -> None:
    topics = " ".join(_where_is_rows()).lower()
    for topic in ("langchain", "llamaindex", "documents", "rerank", "in-prompt", "usage per "
                  "provider", "cost", "redaction", "bounding", "writing", "spool", "query:",
                  "cli:"):
        assert topic in topics, topic


def test_the_table_names_every_cli_command_and_query() -> None:
    from ragtrail.cli import COMMANDS
    from ragtrail.query import __all__ as queries

    named = {symbol for symbols in _where_is_rows().values() for symbol in symbols}
    commands = {tuple(("ragtrail.cli" + target.split(":")[0], target.split(":")[1]))
                for target in COMMANDS.values()}
    assert commands <= named, commands - named
    functions = {name for name in queries if name.islower()}
    assert {("ragtrail.query", name) for name in functions} <= named


def test_tests_are_grouped_by_layer(pytestconfig: pytest.Config) -> None:
    """Every test module lives in a layer directory that is a registered marker."""
    from layers import LAYERS

    tests = Path(__file__).resolve().parents[1]
    assert not sorted(p.name for p in tests.glob("test_*.py")), "tests/ root holds tests"
    layers = {p.relative_to(tests).parts[0] for p in tests.rglob("test_*.py")}
    assert layers == set(LAYERS), layers ^ set(LAYERS)
    markers = {line.split(":")[0].strip() for line in pytestconfig.getini("markers")}
    assert set(LAYERS) <= markers, set(LAYERS) - markers
