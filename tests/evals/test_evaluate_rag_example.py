"""``examples/evaluate_rag.py`` (the end of ``make demo``) runs offline and stores what it
prints: an evaluation per answer and evaluator, each with its judge's tokens and cost."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
sys.path.insert(0, str(EXAMPLES))

import evaluate_rag  # noqa: E402

from li_support import reset_llamaindex  # noqa: E402
from ragtrail import Trail  # noqa: E402

_reset = pytest.fixture(autouse=True)(reset_llamaindex)


def test_evaluate_rag_judges_every_answer_and_prints_the_judges_cost(
        sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    results = evaluate_rag.main(sqlite_url)
    out = capsys.readouterr().out
    assert len(results) == 2 * len(evaluate_rag.QUESTIONS)
    assert {r.name for r in results} == {"faithfulness", "relevancy"}
    assert all(r.error is None and r.passed is not None for r in results)
    with Trail(sqlite_url) as trail:
        stored = trail.evaluations()
        assert {e.id for e in stored} == {r.id for r in results}
        (judges,) = trail.usage(["model"], request_type="evaluation")
        assert judges.calls == len(results) and judges.total_cost is not None
        assert sum(e.judge.cost_metrics.total_cost for e in stored  # type: ignore[union-attr,misc]
                   ) == judges.total_cost
        answered = {t.trace_id for t in trail.traces()}
    assert {r.trace_id for r in results} == answered
    assert "Evaluations of the demo's answers" in out and "judges" in out
    assert f"{judges.total_cost:f}" in out
