"""No test and no example imports a private module of ragtrail, or a private name of one
of its modules, except through a named testing hook: ``ragtrail.testing.internals`` for
the core, ``ragtrail_llamaindex.testing`` / ``ragtrail_langchain.testing`` for the
adapters. Examples use the public API only (they may not use the hooks either).

Found by parsing every ``.py`` file under ``tests/`` and ``examples/``: ``import``,
``from ... import`` (also inside functions), and string literals naming such a module,
which covers ``importlib.import_module("...")``, ``pytest.importorskip("...")`` and
``monkeypatch.setattr("module.attr", ...)`` (each imports the module it names).
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = frozenset({"ragtrail", "ragtrail_langchain", "ragtrail_llamaindex"})
HOOKS = frozenset({"ragtrail.testing.internals", "ragtrail_langchain.testing",
                   "ragtrail_llamaindex.testing"})
#: A dotted name, as a string literal that names a module (and perhaps an attribute).
_DOTTED = re.compile(r"[A-Za-z_]\w*(?:\.\w+)+")


def _private(dotted: str, *, hooks: frozenset[str] = HOOKS) -> bool:
    """Whether ``dotted`` reaches a private part of ragtrail's packages other than
    through a hook: a component (module or name) starting with ``_`` (dunders such as
    ``__version__`` are public), or a top-level module of theirs such as
    ``_ragtrail_langchain_autoload``."""
    parts = dotted.split(".")
    if parts[0].startswith("_ragtrail"):
        return True
    if parts[0] not in PACKAGES:
        return False
    for depth, part in enumerate(parts[1:], start=2):
        if ".".join(parts[:depth]) in hooks:
            return False
        if part.startswith("_") and not (part.startswith("__") and part.endswith("__")):
            return True
    return False


def private_imports(source: str, *, hooks: frozenset[str] = HOOKS) -> list[tuple[int, str]]:
    """(line, what) for each private import in ``source``, in line order."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, f"import {alias.name}") for alias in node.names
                      if _private(alias.name, hooks=hooks)]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if _private(node.module, hooks=hooks):
                names = ", ".join(alias.name for alias in node.names)
                found.append((node.lineno, f"from {node.module} import {names}"))
            else:
                found += [(node.lineno, f"from {node.module} import {alias.name}")
                          for alias in node.names
                          if _private(f"{node.module}.{alias.name}", hooks=hooks)]
        elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
              and _DOTTED.fullmatch(node.value) and _private(node.value, hooks=hooks)):
            found.append((node.lineno, repr(node.value)))
    return sorted(found)


def _offenders(folder: str, hooks: frozenset[str]) -> list[str]:
    return [f"{path.relative_to(ROOT)}:{line}: {what}"
            for path in sorted((ROOT / folder).rglob("*.py"))
            for line, what in private_imports(path.read_text(), hooks=hooks)]


def test_no_test_imports_a_private_module_except_through_a_testing_hook() -> None:
    offenders = _offenders("tests", HOOKS)
    assert not offenders, "\n".join(["import these through a testing hook:", *offenders])


def test_examples_use_only_the_public_api() -> None:
    offenders = _offenders("examples", frozenset())
    assert not offenders, "\n".join(["examples must use the public API:", *offenders])


def test_every_hook_resolves_and_some_test_uses_it() -> None:
    """A hook whose target moved fails here, not in the test that needs it; a hook no
    test imports any more is removed rather than kept as an unexplained reach inside."""
    used: dict[str, set[str]] = {hook: set() for hook in HOOKS}
    for path in (ROOT / "tests").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module in used:
                used[node.module].update(alias.name for alias in node.names)
    for hook in sorted(HOOKS):
        try:
            module = importlib.import_module(hook)
        except ModuleNotFoundError:
            assert not used[hook], f"{hook} is imported by tests but does not exist"
            continue
        names = set(module.__all__)
        for name in sorted(names):
            assert getattr(module, name) is not None, f"{hook}.{name}"
        assert names == used[hook], (f"{hook}: unused {sorted(names - used[hook])}, "
                                     f"not exported {sorted(used[hook] - names)}")


@pytest.mark.parametrize("source", [
    "from ragtrail.store._tables import runs",
    "from ragtrail.store import _tables",
    "from ragtrail.capture.recorder import _segment",
    "import ragtrail.cli._evals as evals",
    "import ragtrail._log",
    "def f():\n    from ragtrail_llamaindex._roles import span_name",
    "import importlib\nimportlib.import_module('ragtrail.writer._retry')",
    "def t(monkeypatch):\n    monkeypatch.setattr('ragtrail.query._usage._plan', None)",
    "import _ragtrail_langchain_autoload",
    "from ragtrail.testing import internals\nfrom ragtrail_llamaindex.testing import x\n"
    "from ragtrail.export import _otel",
])
def test_the_check_finds_each_form_of_private_import(source: str) -> None:
    found = private_imports(source)
    assert len(found) == 1 and found[0][0] == source.count("\n") + 1, found


@pytest.mark.parametrize("source", [
    "from ragtrail.testing.internals import store_tables",
    "from ragtrail.testing import internals",
    "from ragtrail_llamaindex.testing import span_name",
    "import ragtrail.testing.internals as hooks\nhooks.store_tables",
    "from ragtrail import __version__, Trail",
    "from langchain_core.tracers import _streaming",  # not ragtrail's to promise
    "import logging\nlogging.getLogger('ragtrail.writer')",
    "from reliability._factory import make_record",  # the tests' own helpers
])
def test_the_check_lets_public_and_hooked_imports_through(source: str) -> None:
    assert private_imports(source) == []
