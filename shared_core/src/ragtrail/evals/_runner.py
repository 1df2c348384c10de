"""What every evaluation runner does around its framework's evaluator: read the stored
question, answer and in-prompt contexts of a trace, and store the result with its judge.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import NotFoundError
from ..query._evaluations import Evaluation, EvaluationSource
from ._judge import JudgeRun

if TYPE_CHECKING:
    from ..trail import Trail

__all__ = ["EvaluationInputs", "evaluation_inputs", "record_result"]


@dataclass(frozen=True)
class EvaluationInputs:
    """What a judge is shown of one stored trace."""

    trace_id: str
    question: str | None
    answer: str | None
    contexts: list[str] = field(default_factory=list)


def evaluation_inputs(trail: Trail, trace_id: str) -> EvaluationInputs:
    """The question, answer and the documents that reached the prompt (in order, each
    once) of the trace holding ``trace_id``, after flushing what is still queued.

    Only documents stored at stage ``in_prompt`` count as context: a retrieved document
    that never reached the LLM did not inform the answer.
    """
    trail.flush()
    lineage = trail.lineage(trace_id)
    seen: set[str] = set()
    contexts: list[str] = []
    for use in lineage.documents_at("in_prompt"):
        if use.content and use.content_hash not in seen:
            seen.add(use.content_hash)
            contexts.append(use.content)
    return EvaluationInputs(lineage.trace_id, lineage.question, lineage.answer, contexts)


def record_result(
    trail: Trail,
    inputs: EvaluationInputs,
    judge: JudgeRun,
    *,
    name: str,
    vendor_name: str,
    vendor_version: str | None = None,
    score: float | None = None,
    label: str | None = None,
    passed: bool | None = None,
    explanation: str | None = None,
    error: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    keep_previous: bool = False,
) -> Evaluation:
    """Store one runner's result (or its error) with its judge trace, and return it.

    A judge that failed (``judge.error``) or gave no usable result is stored with
    ``error`` set and no score. Without ``keep_previous`` the evaluation id is derived
    from the trace, vendor and name, so evaluating again replaces the earlier result.
    """
    if judge.error is not None and error is None:
        error = f"{type(judge.error).__name__}: {judge.error}"
    if error is not None:
        score = label = passed = None
    evaluation_id = trail._write_evaluation(
        inputs.trace_id, name, score=score, label=label, passed=passed,
        explanation=explanation, source=EvaluationSource.LLM, vendor_name=vendor_name,
        vendor_version=vendor_version, judge_trace_id=judge.id, metadata=metadata,
        evaluation_id=str(uuid.uuid4()) if keep_previous else None, error=error,
    )
    found = trail._evaluation(evaluation_id)
    if found is None:  # pragma: no cover - the trace was read just before
        raise NotFoundError(f"evaluation {evaluation_id} was not stored")
    return found
