"""examples/langchain_rag.py runs offline and prints the lineage it stored."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from ragtrail import Trail
from ragtrail.schemas import DocStage, RunKind

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "langchain_rag.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("langchain_rag_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # pydantic resolves the models' annotations there
    spec.loader.exec_module(module)
    return module


def test_example_prints_the_stored_lineage(sqlite_url: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    example = _load()
    trace_id = example.main(sqlite_url)
    printed = capsys.readouterr().out

    with Trail(sqlite_url) as trail:
        lineage = trail.lineage(trace_id)
    assert lineage.question == example.QUESTION
    assert lineage.answer and lineage.answer.startswith("In WAL mode")
    assert [str(r.kind) for r in lineage.runs if r.kind is not RunKind.CHAIN] == [
        "retriever", "reranker", "prompt", "llm", "parser"]
    reranked = [d.document_id for d in lineage.documents_at(DocStage.RERANKED)]
    assert reranked == ["sqlite-wal", "sqlite-locks"]
    assert {d.document_id for d in lineage.documents_at(DocStage.IN_PROMPT)} == set(reranked)
    assert lineage.total_cost is not None and lineage.total_cost > 0

    assert f"question  {example.QUESTION}" in printed
    assert f"answer    {lineage.answer}" in printed
    assert f"cost      {lineage.total_cost} USD" in printed
    assert "model     openai/gpt-4o-mini" in printed
    for stage in ("retrieved:", "reranked:", "in_prompt:"):
        assert stage in printed
    assert "#1 sqlite-wal         score 0.714  (was #1)" in printed
