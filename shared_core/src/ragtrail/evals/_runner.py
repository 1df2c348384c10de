"""What every evaluation runner does around its framework's evaluator: read the stored
question, answer and in-prompt contexts of a trace, and store the result with its judge.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import threading
import uuid
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import NotFoundError
from ..query._evaluations import Evaluation, EvaluationSource
from ._judge import JudgeRun

if TYPE_CHECKING:
    from ..trail import Trail

T = TypeVar("T")

__all__ = ["EvaluationInputs", "evaluation_inputs", "record_result", "run_coroutine"]

_loops = threading.local()


def run_coroutine(coro: Coroutine[Any, Any, T]) -> T:
    """Run an evaluator's coroutine to completion from synchronous code.

    Each thread keeps one event loop for all its evaluations: an async client's pooled
    connections belong to the loop that opened them, and a new loop per evaluation
    (``asyncio.run``) made the OpenAI client fail on them and send the request again.
    Called with a loop already running in this thread, the coroutine runs on a worker
    thread of its own (with this context's variables).
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        loop = getattr(_loops, "loop", None)
        if loop is None or loop.is_closed():
            loop = _loops.loop = asyncio.new_event_loop()
        return loop.run_until_complete(coro)
    context = contextvars.copy_context()

    def in_worker() -> T:
        run: Any = context.run  # mypy cannot bind T through Context.run
        result: T = run(run_coroutine, coro)
        return result

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(in_worker).result()


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
