"""``ragtrail.evals.deepeval.evaluate``: DeepEval metrics judge stored traces.

Needs the extra ``ragtrail[deepeval]``. Each metric is measured on an ``LLMTestCase``
built from what the trace stored (question, answer, and the documents that reached the
prompt as ``retrieval_context``) inside a judge trace of its own: the judge model's calls
are captured there when its client is recorded by ragtrail (a LangChain chat model with
ragtrail's handler or ``instrument``, a LlamaIndex LLM with ``ragtrail_llamaindex.
instrument``), e.g. a ``DeepEvalBaseLLM`` subclass wrapping such a client.

Set ``DEEPEVAL_TELEMETRY_OPT_OUT=YES`` before importing deepeval to turn its telemetry off.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..query._evaluations import Evaluation
from ._judge import judge_trace
from ._runner import evaluation_inputs, record_result

if TYPE_CHECKING:
    from ..trail import Trail

__all__ = ["VENDOR_NAME", "evaluate", "metric_name"]

VENDOR_NAME = "DeepEval"


def metric_name(metric: Any) -> str:
    """``AnswerRelevancyMetric`` (``__name__`` "Answer Relevancy") -> ``answer_relevancy``."""
    raw = getattr(metric, "__name__", None)
    if not isinstance(raw, str) or not raw:
        raw = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", type(metric).__name__.removesuffix("Metric"))
    return re.sub(r"[^a-z0-9]+", "_", raw.lower()).strip("_")


def _version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("deepeval")
    except PackageNotFoundError:  # pragma: no cover
        return None


def evaluate(trail: Trail, metrics: Sequence[Any], trace_ids: Sequence[str], *,
             keep_previous: bool = False) -> list[Evaluation]:
    """Measure every DeepEval metric on every trace; store and return the evaluations
    (``vendor_name="DeepEval"``), one per trace and metric, in that order.

    A metric that raises is stored with ``error`` set and no score, and the loop goes
    on. Measuring a trace again with the same metric replaces the earlier result unless
    ``keep_previous``.
    """
    try:
        from deepeval.test_case import LLMTestCase
    except ImportError as exc:
        raise ImportError("ragtrail.evals.deepeval needs deepeval: install ragtrail[deepeval]"
                          ) from exc
    results = []
    for trace_id in trace_ids:
        inputs = evaluation_inputs(trail, trace_id)
        case = LLMTestCase(input=inputs.question or "", actual_output=inputs.answer or "",
                           retrieval_context=inputs.contexts or None)
        for metric in metrics:
            name = metric_name(metric)
            with judge_trace(trail.recorder, evaluated_trace_id=inputs.trace_id, name=name,
                             vendor_name=VENDOR_NAME,
                             inputs={"input": case.input, "actual_output": case.actual_output,
                                     "retrieval_context": case.retrieval_context}) as judge:
                metric.measure(case)
                judge.outputs = {"score": metric.score, "success": metric.success,
                                 "reason": metric.reason}
            error = getattr(metric, "error", None) if judge.error is None else None
            ok = judge.error is None and error is None
            results.append(record_result(
                trail, inputs, judge, name=name, vendor_name=VENDOR_NAME,
                vendor_version=_version(),
                score=float(metric.score) if ok and metric.score is not None else None,
                passed=bool(metric.success) if ok and metric.success is not None else None,
                explanation=getattr(metric, "reason", None) if ok else None,
                error=str(error) if error else None,
                metadata={"metric": type(metric).__name__,
                          "threshold": getattr(metric, "threshold", None),
                          "judge_model": getattr(metric, "evaluation_model", None)},
                keep_previous=keep_previous))
    return results
