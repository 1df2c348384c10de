"""``evaluate_ragas(trail, metrics, trace_ids, *, llm)``: Ragas metrics judge stored traces.

Needs the extra ``ragtrail-langchain[ragas]``. Each metric scores a ``SingleTurnSample``
built from what the trace stored (question, answer, the documents that reached the
prompt as ``retrieved_contexts``), with a LangChain chat model as the judge; the judge's
calls are recorded by ragtrail's LangChain handler into a judge trace of its own.

Set ``RAGAS_DO_NOT_TRACK=true`` to turn Ragas' usage tracking off.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

from ragtrail.evals import (
    Evaluation,
    evaluation_inputs,
    judge_trace,
    record_result,
    run_coroutine,
)

from ._handler import RagtrailCallbackHandler

__all__ = ["VENDOR_NAME", "evaluate_ragas"]

VENDOR_NAME = "Ragas"


def _version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ragas")
    except PackageNotFoundError:  # pragma: no cover
        return None


def _prepare(metrics: Sequence[Any], llm: Any, embeddings: Any) -> None:
    """Give every metric the judge (and embeddings) unless it has its own; init them."""
    from ragas.embeddings import LangchainEmbeddingsWrapper
    from ragas.llms import BaseRagasLLM, LangchainLLMWrapper
    from ragas.run_config import RunConfig

    # ragas 0.4 deprecates its LangChain wrappers in favour of clients of its own; the
    # contract here takes a LangChain model, so the wrapper is what we have. Its notice is
    # about our call, not the application's: kept out of its warnings (an application
    # running with warnings as errors must still get its evaluations).
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"ragas\b")
        warnings.filterwarnings("ignore", message=r"Langchain\w+Wrapper is deprecated",
                                category=DeprecationWarning)
        judge = llm if isinstance(llm, BaseRagasLLM) else LangchainLLMWrapper(llm)
        wrapped = None if embeddings is None else LangchainEmbeddingsWrapper(embeddings)
    for metric in metrics:
        if hasattr(metric, "llm") and metric.llm is None:
            metric.llm = judge
        if wrapped is not None and hasattr(metric, "embeddings") and metric.embeddings is None:
            metric.embeddings = wrapped
        init = getattr(metric, "init", None)
        if callable(init):
            init(RunConfig())


def evaluate_ragas(trail: Any, metrics: Sequence[Any], trace_ids: Sequence[str], *,
                   llm: Any, embeddings: Any = None, keep_previous: bool = False
                   ) -> list[Evaluation]:
    """Score every trace with every Ragas metric (``Faithfulness()``,
    ``ResponseRelevancy()``, ...) using ``llm`` (a LangChain chat model) as the judge;
    store and return the evaluations (``vendor_name="Ragas"``), per trace then metric.

    A metric that raises, or returns NaN (Ragas' "could not score"), is stored with
    ``error`` set and no score; the loop goes on. Scoring a trace again with the same
    metric replaces the earlier result unless ``keep_previous``.
    """
    try:
        from ragas.dataset_schema import SingleTurnSample
    except ImportError as exc:
        raise ImportError("evaluate_ragas needs ragas: install ragtrail-langchain[ragas]"
                          ) from exc
    _prepare(metrics, llm, embeddings)
    handler = RagtrailCallbackHandler(trail)
    results = []
    for trace_id in trace_ids:
        inputs = evaluation_inputs(trail, trace_id)
        sample = SingleTurnSample(user_input=inputs.question or "",
                                  response=inputs.answer or "",
                                  retrieved_contexts=list(inputs.contexts))
        for metric in metrics:
            name = str(getattr(metric, "name", type(metric).__name__))
            score: float | None = None
            with judge_trace(trail.recorder, evaluated_trace_id=inputs.trace_id, name=name,
                             vendor_name=VENDOR_NAME,
                             inputs=sample.model_dump(exclude_none=True)) as judge:
                score = float(run_coroutine(
                    metric.single_turn_ascore(sample, callbacks=[handler])))
                judge.outputs = {"score": score}
            error = None
            if score is not None and not math.isfinite(score):
                error, score = f"{VENDOR_NAME} returned {score} (the metric could not score)", None
            results.append(record_result(
                trail, inputs, judge, name=name, vendor_name=VENDOR_NAME,
                vendor_version=_version(), score=score, error=error,
                metadata={"metric": type(metric).__name__}, keep_previous=keep_previous))
    return results
