"""``ragtrail_langchain.evaluate_ragas``: Ragas metrics judge stored traces.

The judge is langchain-openai's real ``ChatOpenAI`` pointed at the loopback provider
server, whose JSON answers are scripted; its calls are recorded by ragtrail's LangChain
handler into the judge trace. Skipped when ragas is not installed (the extra
``ragtrail-langchain[ragas]``, dependency group ``evals``).
"""

from __future__ import annotations

import json
import os

import pytest

os.environ.setdefault("RAGAS_DO_NOT_TRACK", "true")  # before ragas is imported
pytest.importorskip("ragas", reason="ragas is not installed (extra ragtrail-langchain[ragas],"
                                    " dependency group evals)")

from langchain_openai import ChatOpenAI
from ragas.metrics import Faithfulness
from test_llamaindex_evaluate import _judge_cost, rag_trace, trail  # noqa: F401

from provider_server import (
    EXPECTED_USAGE,
    OPENAI_MODEL,
    ProviderServer,
    serve_provider,
)
from ragtrail import Trail
from ragtrail.schemas import Framework, RunKind
from ragtrail_langchain import evaluate_ragas

provider = pytest.fixture(name="provider")(serve_provider)


def _chat(provider: ProviderServer) -> ChatOpenAI:
    return ChatOpenAI(model=OPENAI_MODEL, base_url=provider.openai_url, api_key="sk-test",
                      max_retries=0, timeout=10)


def test_faithfulness_with_its_judge_cost(trail: Trail, rag_trace: str,  # noqa: F811
                                          provider: ProviderServer) -> None:
    provider.reply_next(
        json.dumps({"statements": ["Readers keep reading.", "The moon is cheese."]}),
        json.dumps({"statements": [
            {"statement": "Readers keep reading.", "reason": "stated", "verdict": 1},
            {"statement": "The moon is cheese.", "reason": "not stated", "verdict": 0}]}))
    (found,) = evaluate_ragas(trail, [Faithfulness()], [rag_trace], llm=_chat(provider))
    assert (found.name, found.vendor_name, found.score, found.error) == (
        "faithfulness", "Ragas", 0.5, None)
    assert len(provider.requests) == 2
    contexts = [u.content for u in trail.lineage(rag_trace).documents_at("in_prompt")]
    assert all(text and text in json.dumps(provider.requests[1].body) for text in contexts)
    assert found.judge is not None and found.judge.token_usage is not None
    assert found.judge.token_usage.total_tokens == 2 * EXPECTED_USAGE["openai"].total_tokens
    assert found.judge.cost_metrics is not None
    assert found.judge.cost_metrics.total_cost == 2 * _judge_cost(
        EXPECTED_USAGE["openai"], OPENAI_MODEL, "openai")
    assert found.judge_trace_id is not None
    judged = trail.lineage(found.judge_trace_id)
    assert {r.framework for r in judged.runs if r.kind is RunKind.LLM} == {Framework.LANGCHAIN}
    assert [t.trace_id for t in trail.traces()] == [rag_trace]


def test_an_unparseable_judge_is_stored_as_an_error(trail: Trail, rag_trace: str,  # noqa: F811
                                                    provider: ProviderServer) -> None:
    provider.reply_next(*["not JSON at all"] * 10)
    (found,) = evaluate_ragas(trail, [Faithfulness()], [rag_trace], llm=_chat(provider))
    assert found.error is not None and found.score is None
