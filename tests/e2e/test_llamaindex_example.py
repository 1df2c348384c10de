"""The LlamaIndex example runs offline and stores the lineage it prints."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest

from li_support import reset_llamaindex
from ragtrail import Trail
from ragtrail.schemas import DocStage, PriceStatus

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "llamaindex_rag.py"


@pytest.fixture(autouse=True)
def _clean_llamaindex() -> Iterator[None]:
    yield from reset_llamaindex()


def test_example_prints_the_stored_lineage(sqlite_url: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("llamaindex_rag", EXAMPLE)
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)

    trace_id = example.main(sqlite_url)
    printed = capsys.readouterr().out
    with Trail(sqlite_url) as trail:
        lineage = trail.lineage(trace_id)
    assert lineage.question == example.QUESTION
    assert lineage.answer is not None and lineage.answer.startswith("In WAL mode")
    assert f"answer    {lineage.answer}" in printed and trace_id in printed
    assert [run.kind.value for run in lineage.runs] == [
        "chain", "retriever", "embedding", "reranker", "chain", "chain", "llm"]
    in_prompt = [d.metadata["ref_doc_id"] for d in lineage.documents
                 if d.stage is DocStage.IN_PROMPT]
    assert in_prompt == ["sqlite-wal", "sqlite-locks"]
    (call,) = lineage.llm_calls
    assert call.metadata.cost_metrics.price_status is PriceStatus.PRICED
    assert lineage.total_cost is not None and lineage.total_cost > 0
