"""``evaluate(trail, evaluator, trace_id)``: a LlamaIndex evaluator judges a stored trace.

The evaluator is shown what the trace stored: its question, its answer, and the
documents that reached its prompt. Every step the judge takes (its own summary index,
its LLM calls) is recorded into a trace of its own (``request_type="evaluation"``),
whether or not LlamaIndex is instrumented, and the result is stored as an evaluation
linked to both traces.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

from llama_index.core.evaluation import BaseEvaluator, EvaluationResult

from ragtrail.evals import (
    Evaluation,
    evaluation_inputs,
    judge_trace,
    record_result,
    run_coroutine,
)

from ._engine import recording_everything
from ._handler import _binding_for, _handler_gone, _lock, _recorder_of

__all__ = ["VENDOR_NAME", "evaluate", "evaluator_name"]

VENDOR_NAME = "LlamaIndex"
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def evaluator_name(evaluator: Any) -> str:
    """``FaithfulnessEvaluator`` -> ``faithfulness``, ``ContextRelevancyEvaluator`` ->
    ``context_relevancy``."""
    base = type(evaluator).__name__.removesuffix("Evaluator") or type(evaluator).__name__
    return _CAMEL.sub("_", base).lower()


@contextlib.contextmanager
def _recording(trail: Any) -> Iterator[None]:
    """Record every LlamaIndex span of this thread or task into ``trail`` meanwhile."""
    recorder = _recorder_of(trail)
    with _lock:
        binding = _binding_for(recorder)
        binding.direct_handlers += 1  # keeps the dispatcher handlers attached
    token = recording_everything.set(binding.engine)
    try:
        yield
    finally:
        recording_everything.reset(token)
        _handler_gone(id(recorder), binding)


def _llm_of(evaluator: Any) -> str | None:
    llm = getattr(evaluator, "_llm", None) or getattr(evaluator, "llm", None)
    metadata = getattr(llm, "metadata", None)
    return getattr(metadata, "model_name", None) or (type(llm).__name__ if llm else None)


def evaluate(
    trail: Any,
    evaluator: BaseEvaluator,
    trace_id: str,
    *,
    name: str | None = None,
    reference: str | None = None,
    keep_previous: bool = False,
) -> Evaluation:
    """Run ``evaluator`` (any LlamaIndex ``BaseEvaluator``: Faithfulness, Relevancy,
    Correctness with ``reference=``, ContextRelevancy, ...) on the stored trace, store
    the result and return it (``vendor_name="LlamaIndex"``).

    ``name`` defaults to the evaluator's (``faithfulness``); evaluating the trace again
    with the same name replaces the earlier result unless ``keep_previous``. An
    evaluator that raises, or whose judge answers something it cannot parse
    (``invalid_result``), gives an evaluation with ``error`` set and no score: the
    caller's loop goes on.
    """
    inputs = evaluation_inputs(trail, trace_id)
    name = name or evaluator_name(evaluator)
    kwargs: dict[str, Any] = {"query": inputs.question, "response": inputs.answer,
                              "contexts": inputs.contexts}
    if reference is not None:
        kwargs["reference"] = reference
    result: EvaluationResult | None = None
    with _recording(trail), judge_trace(
            trail.recorder, evaluated_trace_id=inputs.trace_id, name=name,
            vendor_name=VENDOR_NAME, inputs=kwargs,
            metadata={"evaluator": type(evaluator).__name__}) as judge:
        result = _run(evaluator, kwargs)
        judge.outputs = {"score": result.score, "passing": result.passing,
                         "feedback": result.feedback, "invalid_reason": result.invalid_reason}
    metadata = {"evaluator": type(evaluator).__name__, "judge_llm": _llm_of(evaluator)}
    if reference is not None:
        metadata["reference"] = reference
    error = None
    if result is not None and result.invalid_result:
        error = f"invalid result: {result.invalid_reason or 'the judge answer was not parsed'}"
    ok = result is not None and error is None
    return record_result(
        trail, inputs, judge, name=name, vendor_name=VENDOR_NAME,
        vendor_version=_llamaindex_version(),
        score=result.score if ok and result is not None else None,
        passed=result.passing if ok and result is not None else None,
        explanation=result.feedback if result is not None else None,
        error=error, metadata=metadata, keep_previous=keep_previous)


def _run(evaluator: BaseEvaluator, kwargs: dict[str, Any]) -> EvaluationResult:
    """``evaluator.evaluate(**kwargs)``, but through ragtrail's ``run_coroutine``:
    LlamaIndex's ``asyncio_run`` replaces any RuntimeError the judge raises by a
    "Detected nested async" message, and a loop per call breaks pooled connections."""
    return run_coroutine(evaluator.aevaluate(**kwargs))


def _llamaindex_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("llama-index-core")
    except PackageNotFoundError:  # pragma: no cover
        return None
