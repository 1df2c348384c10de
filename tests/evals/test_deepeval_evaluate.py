"""``ragtrail.evals.deepeval.evaluate``: DeepEval's metrics judge stored traces.

The judge is a ``DeepEvalBaseLLM`` subclass wrapping LlamaIndex's real OpenAI client
pointed at the loopback provider server (recorded by ``ragtrail_llamaindex.instrument``),
whose JSON answers are scripted. Skipped when deepeval is not installed: it is the extra
``ragtrail[deepeval]`` and not in the dev group, because deepeval registers a pytest
plugin (``pytest11`` entry point) and brings pytest-xdist, pytest-rerunfailures and
pytest-repeat into the environment, changing how the whole suite runs.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

os.environ.setdefault("DEEPEVAL_TELEMETRY_OPT_OUT", "YES")  # before deepeval is imported
deepeval = pytest.importorskip(
    "deepeval", reason="deepeval is not installed (extra ragtrail[deepeval]; kept out of the "
                       "dev group because it installs a pytest plugin)")

from deepeval.metrics import AnswerRelevancyMetric  # noqa: E402
from deepeval.models import DeepEvalBaseLLM  # noqa: E402
from llama_index.llms.openai import OpenAI  # noqa: E402
from test_llamaindex_evaluate import _judge_cost, rag_trace, trail  # noqa: E402,F401

from provider_server import (  # noqa: E402
    EXPECTED_USAGE,
    OPENAI_MODEL,
    ProviderServer,
    serve_provider,
)
from ragtrail import Trail  # noqa: E402
from ragtrail.evals import deepeval as rt_deepeval  # noqa: E402
from ragtrail_llamaindex import instrument, uninstrument  # noqa: E402

provider = pytest.fixture(name="provider")(serve_provider)


class LoopbackJudge(DeepEvalBaseLLM):
    """A DeepEval model wrapping a LlamaIndex OpenAI client (the loopback server)."""

    def __init__(self, llm: OpenAI) -> None:
        self.llm = llm
        super().__init__(model=OPENAI_MODEL)

    def load_model(self) -> Any:
        return self.llm

    def generate(self, prompt: str, schema: Any = None, **kwargs: Any) -> Any:
        text = self.llm.complete(prompt).text
        return schema.model_validate(json.loads(text)) if schema is not None else text

    async def a_generate(self, prompt: str, schema: Any = None, **kwargs: Any) -> Any:
        text = (await self.llm.acomplete(prompt)).text
        return schema.model_validate(json.loads(text)) if schema is not None else text

    def get_model_name(self) -> str:
        return OPENAI_MODEL


@pytest.fixture
def judge(trail: Trail, provider: ProviderServer, tmp_path: Any,  # noqa: F811
          monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.chdir(tmp_path)  # deepeval keeps a .deepeval folder in the working dir
    instrument(trail)
    yield LoopbackJudge(OpenAI(model=OPENAI_MODEL, api_base=provider.openai_url,
                               api_key="sk-test", max_retries=0, timeout=10))
    uninstrument(trail)


def test_answer_relevancy_with_its_judge_cost(trail: Trail, rag_trace: str,  # noqa: F811
                                              provider: ProviderServer, judge: Any) -> None:
    provider.reply_next(
        json.dumps({"statements": ["Readers keep reading.", "The sky is blue."]}),
        json.dumps({"verdicts": [{"verdict": "yes"}, {"verdict": "no", "reason": "off"}]}),
        json.dumps({"reason": "Half of the answer is about the question."}))
    metric = AnswerRelevancyMetric(model=judge, threshold=0.7, async_mode=False)
    (found,) = rt_deepeval.evaluate(trail, [metric], [rag_trace])
    assert (found.name, found.vendor_name, found.score, found.passed) == (
        "answer_relevancy", "DeepEval", 0.5, False)
    assert found.explanation == "Half of the answer is about the question."
    assert found.error is None and found.trace_id == rag_trace
    assert len(provider.requests) == 3
    assert found.judge is not None and found.judge.token_usage is not None
    assert found.judge.token_usage.total_tokens == 3 * EXPECTED_USAGE["openai"].total_tokens
    assert found.judge.cost_metrics is not None
    assert found.judge.cost_metrics.total_cost == 3 * _judge_cost(
        EXPECTED_USAGE["openai"], OPENAI_MODEL, "openai")
    assert [t.trace_id for t in trail.traces()] == [rag_trace]


def test_a_metric_that_fails_is_stored_as_an_error(trail: Trail, rag_trace: str,  # noqa: F811
                                                   provider: ProviderServer, judge: Any) -> None:
    provider.reply_next("this is not JSON")
    metric = AnswerRelevancyMetric(model=judge, async_mode=False)
    (found,) = rt_deepeval.evaluate(trail, [metric], [rag_trace])
    assert found.error is not None and found.score is None
    assert found.judge_trace_id is not None
