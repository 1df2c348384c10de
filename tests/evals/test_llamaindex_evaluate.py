"""``ragtrail_llamaindex.evaluate``: LlamaIndex's own evaluators judge stored traces.

The evaluated trace is a real LlamaIndex query engine run (vector retriever, reranker,
synthesizer, LLM) recorded by the classic handler. Judges are a scripted LlamaIndex LLM
(a ``CustomLLM`` answering a queue of verdicts with OpenAI-shaped usage) and the real
``llama-index-llms-openai`` and ``llama-index-llms-anthropic`` clients pointed at the
loopback provider server, whose answers are scripted with ``reply_next``.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from llama_index.core.base.llms.types import CompletionResponse, LLMMetadata
from llama_index.core.evaluation import (
    ContextRelevancyEvaluator,
    CorrectnessEvaluator,
    FaithfulnessEvaluator,
    RelevancyEvaluator,
)
from llama_index.core.llms import CustomLLM, MockLLM
from llama_index.core.llms.callbacks import llm_completion_callback
from llama_index.llms.anthropic import Anthropic
from llama_index.llms.openai import OpenAI

from li_support import KeywordReranker, UsageLLM, build_index, reset_llamaindex
from provider_server import (
    ANTHROPIC_MODEL,
    EXPECTED_USAGE,
    OPENAI_MODEL,
    ProviderServer,
    genai_prices_total,
    serve_provider,
)
from ragtrail import Trail
from ragtrail.pricing import Pricer
from ragtrail.schemas import Framework, LLMTokenUsage, PriceStatus, RunKind, RunStatus
from ragtrail_llamaindex import evaluate, instrument, uninstrument

provider = pytest.fixture(name="provider")(serve_provider)
_reset = pytest.fixture(autouse=True)(reset_llamaindex)

QUESTION = "how does write ahead logging help readers?"
JUDGE_USAGE = {"prompt_tokens": 300, "completion_tokens": 5, "total_tokens": 305}


class ScriptedJudge(CustomLLM):
    """A judge answering the scripted verdicts in order, reporting OpenAI-shaped usage;
    ``fail_with`` makes every call raise it instead."""

    model: str = "gpt-4o-mini"
    verdicts: list[str] = []
    prompts: list[str] = []
    fail_with: str | None = None

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(model_name=self.model)

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        self.prompts.append(prompt)
        if self.fail_with is not None:
            raise RuntimeError(self.fail_with)
        raw = {"id": "chatcmpl-judge", "model": "gpt-4o-mini-2024-07-18",
               "choices": [{"finish_reason": "stop"}], "usage": JUDGE_USAGE}
        return CompletionResponse(text=self.verdicts.pop(0), raw=raw)

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Any:
        raise NotImplementedError


@pytest.fixture
def trail(sqlite_url: str) -> Iterator[Trail]:
    with Trail(sqlite_url) as opened:
        yield opened


@pytest.fixture
def rag_trace(trail: Trail) -> str:
    """A real query engine's run, recorded through the root dispatcher (then no more)."""
    index = build_index()  # not recorded: only the query is
    handler = instrument(trail)
    engine = index.as_query_engine(
        llm=UsageLLM(answer="Readers keep reading while the writer appends to the log."),
        similarity_top_k=3, node_postprocessors=[KeywordReranker(top_n=2)])
    engine.query(QUESTION)
    uninstrument(trail)
    trail.flush()
    assert handler.last_trace_id is not None
    return handler.last_trace_id


def _judge_cost(usage: LLMTokenUsage, model: str, provider: str | None) -> Decimal:
    cost = Pricer().cost(usage, model=model, provider=provider)
    assert cost.price_status is PriceStatus.PRICED and cost.total_cost is not None
    return cost.total_cost


def test_faithfulness_judges_the_stored_question_answer_and_in_prompt_contexts(
        trail: Trail, rag_trace: str) -> None:
    judge = ScriptedJudge(verdicts=["YES"], prompts=[])
    found = evaluate(trail, FaithfulnessEvaluator(llm=judge), rag_trace)
    assert (found.name, found.vendor_name, found.source.value) == (
        "faithfulness", "LlamaIndex", "llm")
    assert (found.score, found.passed, found.error) == (1.0, True, None)
    assert found.trace_id == rag_trace and found.vendor_version
    lineage = trail.lineage(rag_trace)
    in_prompt = [use.content for use in lineage.documents_at("in_prompt")]
    assert in_prompt and len(judge.prompts) == 1
    assert all(text and text in judge.prompts[0] for text in in_prompt)
    retrieved_only = {use.content for use in lineage.documents_at("retrieved")} - set(in_prompt)
    assert retrieved_only and not any(text and text in judge.prompts[0]
                                      for text in retrieved_only)
    assert lineage.answer is not None and lineage.answer in judge.prompts[0]
    # The judge's call is a trace of its own, marked, linked both ways, and summed.
    assert lineage.evaluations == [found]
    assert found.judge is not None and found.judge_trace_id is not None
    assert found.judge.token_usage == LLMTokenUsage(input_tokens=300, output_tokens=5,
                                                    total_tokens=305)
    assert found.judge.cost_metrics is not None
    assert found.judge.cost_metrics.total_cost == _judge_cost(
        found.judge.token_usage, "gpt-4o-mini", None)
    judged = trail.lineage(found.judge_trace_id)
    assert judged.root is not None and judged.root.metadata["evaluated_trace_id"] == rag_trace
    assert {run.request_type for run in judged.runs} == {"evaluation"}
    llm_runs = [run for run in judged.runs if run.kind is RunKind.LLM]
    assert [run.framework for run in llm_runs] == [Framework.LLAMAINDEX]
    # Left out of the application's traces, usage and document answers.
    assert [t.trace_id for t in trail.traces()] == [rag_trace]
    assert sum(row.calls for row in trail.usage([])) == 1
    assert sum(row.calls for row in trail.usage([], request_type="evaluation")) == 1
    for use in lineage.documents_at("in_prompt"):
        assert {u.trace_id for u in trail.answers_using(use.content_hash)} == {rag_trace}
        assert found.judge_trace_id in {u.trace_id for u in trail.answers_using(
            use.content_hash, include_evaluations=True)}


def test_relevancy_no_is_a_failed_evaluation(trail: Trail, rag_trace: str) -> None:
    found = evaluate(trail, RelevancyEvaluator(llm=ScriptedJudge(verdicts=["NO"])), rag_trace)
    assert (found.name, found.score, found.passed) == ("relevancy", 0.0, False)


def test_correctness_with_a_reference(trail: Trail, rag_trace: str) -> None:
    judge = ScriptedJudge(verdicts=["4.5\nMatches the reference."], prompts=[])
    found = evaluate(trail, CorrectnessEvaluator(llm=judge), rag_trace,
                     reference="Readers are not blocked by the writer.")
    assert (found.name, found.score, found.passed) == ("correctness", 4.5, True)
    assert found.explanation == "Matches the reference."
    assert found.metadata["reference"] == "Readers are not blocked by the writer."
    assert "Readers are not blocked by the writer." in judge.prompts[0]


def test_context_relevancy_and_its_unparseable_answer(trail: Trail, rag_trace: str) -> None:
    good = evaluate(trail, ContextRelevancyEvaluator(
        llm=ScriptedJudge(verdicts=["Relevant to both parts. [RESULT] 3.0"])), rag_trace)
    assert (good.name, good.score, good.error) == ("context_relevancy", 0.75, None)
    bad = evaluate(trail, ContextRelevancyEvaluator(
        llm=ScriptedJudge(verdicts=["I cannot say."])), rag_trace, name="context_relevancy_2")
    assert bad.error == "invalid result: Unable to parse the output string."
    assert (bad.score, bad.passed) == (None, None)
    assert bad.judge is not None and bad.judge.token_usage is not None  # the judge still cost


def test_an_evaluator_that_raises_is_stored_as_an_error(trail: Trail, rag_trace: str) -> None:
    judge = ScriptedJudge(fail_with="judge overloaded")
    found = evaluate(trail, CorrectnessEvaluator(llm=judge), rag_trace, reference="x")
    assert found.error == "RuntimeError: judge overloaded"
    assert (found.score, found.passed, found.label) == (None, None, None)
    assert found.judge_trace_id is not None
    judged = trail.lineage(found.judge_trace_id)
    assert judged.root is not None and judged.root.status is RunStatus.ERROR
    # The loop goes on: the next evaluation works.
    ok = evaluate(trail, RelevancyEvaluator(llm=ScriptedJudge(verdicts=["YES"])), rag_trace)
    assert ok.passed is True


def test_reevaluating_replaces_unless_told_to_keep_both(trail: Trail, rag_trace: str) -> None:
    first = evaluate(trail, RelevancyEvaluator(llm=ScriptedJudge(verdicts=["NO"])), rag_trace)
    second = evaluate(trail, RelevancyEvaluator(llm=ScriptedJudge(verdicts=["YES"])), rag_trace)
    assert first.id == second.id
    assert [e.passed for e in trail.evaluations(rag_trace)] == [True]
    # The replaced result's judge trace went with it.
    assert {t.trace_id for t in trail.traces(include_evaluations=True)} == {
        rag_trace, second.judge_trace_id}
    third = evaluate(trail, RelevancyEvaluator(llm=ScriptedJudge(verdicts=["NO"])), rag_trace,
                     keep_previous=True)
    assert third.id != second.id
    assert sorted(e.passed for e in trail.evaluations(rag_trace)) == [False, True]


def test_llamaindex_outside_an_evaluation_is_not_recorded(trail: Trail, rag_trace: str) -> None:
    evaluate(trail, RelevancyEvaluator(llm=ScriptedJudge(verdicts=["YES"])), rag_trace)
    trail.flush()
    before = len(trail.traces(include_evaluations=True))
    MockLLM().complete("not instrumented")
    trail.flush()
    assert len(trail.traces(include_evaluations=True)) == before


@pytest.mark.parametrize("client", ["openai", "anthropic"])
def test_real_clients_as_judges(trail: Trail, rag_trace: str, provider: ProviderServer,
                                client: str) -> None:
    judge: Any
    if client == "openai":
        judge = OpenAI(model=OPENAI_MODEL, api_base=provider.openai_url, api_key="sk-test",
                       max_retries=0, timeout=10, temperature=0.0)
        model, priced_as = OPENAI_MODEL, "openai"
    else:
        judge = Anthropic(model=ANTHROPIC_MODEL, base_url=provider.url, api_key="sk-test",
                          max_retries=0, timeout=10, temperature=0.0)
        model, priced_as = ANTHROPIC_MODEL, "anthropic"
    provider.reply_next("YES")
    found = evaluate(trail, FaithfulnessEvaluator(llm=judge), rag_trace)
    assert (found.score, found.passed) == (1.0, True)
    assert len(provider.requests) == 1
    sent = provider.requests[0]
    assert sent.api == priced_as and QUESTION not in (sent.body.get("system") or "")
    assert found.judge is not None
    assert found.judge.provider == priced_as
    assert found.judge.provider_model == model
    assert found.judge.token_usage == EXPECTED_USAGE[priced_as]
    assert found.judge.cost_metrics is not None
    # genai-prices' own price of what the server answered (Anthropic: 1h cache writes at
    # their own rate, from the usage's TTL split).
    assert found.judge.cost_metrics.total_cost == genai_prices_total(
        priced_as, found.judge.request_timestamp)
    assert found.judge.response_metadata is not None
    assert found.judge.response_metadata.request_id in (sent.request_id, sent.response_id)
    (row,) = trail.usage(["provider"], request_type="evaluation")
    assert (row.group["provider"], row.total_cost) == (
        priced_as, found.judge.cost_metrics.total_cost)
    (judged,) = trail.evaluations(judge_provider=priced_as)
    assert judged.id == found.id
