"""The README's snippets and commands are exercised, so the documentation cannot rot.

Every ```python block runs as written, in a fresh directory, with ``chain`` (the
LangChain example's RAG chain) and ``index`` (a LlamaIndex vector index over the
LlamaIndex example's documents, with its offline LLM) defined, as a reader would have
them. Every ``ragtrail`` line of the command synopsis names a real command and options.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from ragtrail.cli import cli

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```(\w+)\n(.*?)```", README, flags=re.S)
PYTHON = [code for lang, code in BLOCKS if lang == "python"]


def _namespace() -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "examples"))
    import langchain_rag
    import llamaindex_rag
    from llama_index.core import Document, Settings, VectorStoreIndex

    Settings.llm = llamaindex_rag.OfflineLLM()
    Settings.embed_model = llamaindex_rag.WordEmbedding()
    docs = [Document(text=text, doc_id=key, metadata={"source": key})
            for key, text in llamaindex_rag.KNOWLEDGE.items()]
    return {"chain": langchain_rag.build_chain(), "index": VectorStoreIndex.from_documents(docs)}


@pytest.fixture
def reader_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RAGTRAIL_URL", raising=False)
    return tmp_path


def test_readme_has_the_two_setup_commands() -> None:
    setup = next(code for lang, code in BLOCKS if lang == "sh")
    assert "make demo" in setup and "make test" in setup
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^demo:", makefile, flags=re.M) and re.search(r"^test:", makefile, flags=re.M)
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, flags=re.M), "CI must run exactly the README's command"


def test_every_python_snippet_runs(reader_dir: Path) -> None:
    assert len(PYTHON) >= 4
    from ragtrail_llamaindex import uninstrument

    shared = _namespace()
    try:
        for number, code in enumerate(PYTHON, start=1):
            namespace = dict(shared)
            try:
                exec(compile(code, f"README.md python block {number}", "exec"), namespace)
            except Exception as exc:  # pragma: no cover - the message is the point
                pytest.fail(f"README python block {number} failed: {type(exc).__name__}: {exc}")
            trail = namespace.get("trail")
            if trail is not None:
                trail.close()
    finally:
        uninstrument()
    assert (reader_dir / "ragtrail.db").exists()


def _synopsis_lines() -> list[list[str]]:
    section = README[README.index("## Command line"):]
    block = re.search(r"```\n(.*?)```", section, flags=re.S)
    assert block is not None
    lines = []
    for raw in block.group(1).splitlines():
        for part in raw.split("#", 1)[0].split(";"):
            words = part.strip().split()
            if words and words[0] == "ragtrail":
                lines.append(words[1:])
    return lines


def test_every_command_in_the_synopsis_exists_with_its_options() -> None:
    lines = _synopsis_lines()
    assert len(lines) >= 10
    ctx = click.Context(cli)
    for words in lines:
        path = [w for w in words if re.fullmatch(r"[a-z]+(?:-[a-z]+)*", w)][:2]
        command: Any = cli
        for name in path:
            if isinstance(command, click.Group) and name in command.list_commands(ctx):
                command = command.get_command(ctx, name)
        assert command is not cli, words
        result = CliRunner().invoke(cli, [*[p for p in path if p in _names()], "--help"])
        assert result.exit_code == 0, (words, result.output)
        for option in re.findall(r"--[a-z-]+", " ".join(words)):
            assert option in result.output, (words, option)


def _names() -> set[str]:
    ctx = click.Context(cli)
    names = set(cli.list_commands(ctx))
    for name in list(names):
        command = cli.get_command(ctx, name)
        if isinstance(command, click.Group):
            names.update(command.list_commands(ctx))
    return names


def test_common_options_are_documented_and_real() -> None:
    assert "--db URL" in README and "--json" in README
    for name in ("traces", "show", "lineage", "documents", "usage", "diff"):
        help_text = CliRunner().invoke(cli, [name, "--help"]).output
        assert "--db" in help_text and "--json" in help_text, name
