"""Evaluations linked to traces, and the machinery runners share.

    trail.add_evaluation(trace_id, "helpfulness", score=0.8, source="human")
    trail.evaluations(trace_id)                    # -> list[Evaluation], newest first

Runners that judge stored traces: ``ragtrail_llamaindex.evaluate`` (any LlamaIndex
evaluator), ``ragtrail_langchain.evaluate_ragas`` (extra ``ragtrail-langchain[ragas]``)
and ``ragtrail.evals.deepeval.evaluate`` (extra ``ragtrail[deepeval]``). Each captures
its judge's LLM calls as a trace of their own (``request_type="evaluation"``), which
``traces()``, ``usage()`` and ``answers_using()`` leave out unless asked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..query._evaluations import (
    EVALUATION_REQUEST_TYPE,
    Evaluation,
    EvaluationSource,
    JudgeCost,
    summarise_judge,
)
from ._judge import JudgeRun, judge_trace
from ._runner import EvaluationInputs, evaluation_inputs, record_result, run_coroutine
from ._write import MAX_LABEL_CHARS, MAX_NAME_CHARS, evaluation_key

if TYPE_CHECKING:
    from ._report import evaluations_table

__all__ = [
    "EVALUATION_REQUEST_TYPE",
    "MAX_LABEL_CHARS",
    "MAX_NAME_CHARS",
    "Evaluation",
    "EvaluationInputs",
    "EvaluationSource",
    "JudgeCost",
    "JudgeRun",
    "evaluation_inputs",
    "evaluation_key",
    "evaluations_table",
    "judge_trace",
    "record_result",
    "run_coroutine",
    "summarise_judge",
]


def __getattr__(name: str) -> Any:
    # Lazy: the rich table is imported only by who prints one.
    if name == "evaluations_table":
        from ._report import evaluations_table

        return evaluations_table
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
