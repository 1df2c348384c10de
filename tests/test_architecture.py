"""Dependency rules of ARCHITECTURE.md, enforced so a violation fails CI."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

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
    root = Path(__file__).resolve().parents[1]
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
