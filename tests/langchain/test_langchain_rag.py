"""The LCEL RAG chain, recorded by the handler and read back from the store.

Each form of execution (invoke, batch, stream and their async forms, astream_events)
must store exactly the run tree LangChain's own tracer collects, plus the documents by
stage and the LLM call's metadata.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from langchain_core.documents import Document
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.tracers.run_collector import RunCollectorCallbackHandler

from lc_support import (
    HUMAN,
    MODEL,
    MODEL_VERSION,
    PROVIDER,
    SYSTEM,
    TEMPLATE_TEXT,
    FakeOpenAIChat,
    assert_same_tree,
    build_rag_chain,
    format_docs,
    make_retriever,
    open_trail,
    rerank,
    stored,
    usage_for,
)
from ragtrail import Trail
from ragtrail.capture import CaptureConfig
from ragtrail.pricing import Pricer
from ragtrail.schemas import DocStage, LLMTokenUsage, RunKind, RunStatus, content_hash
from ragtrail.writer import WriterConfig
from ragtrail_langchain import RagtrailCallbackHandler

trail = pytest.fixture(name="trail")(open_trail)

QUESTION = "How does SQLite WAL let readers and a writer work together?"


def expected_call(question: str) -> dict[str, Any]:
    """What the chain does for ``question``, computed without the handler."""
    retrieved = make_retriever().invoke(question)
    reranked = rerank({"question": question, "documents": retrieved})
    prompt = ChatPromptTemplate.from_messages([("system", SYSTEM), ("human", HUMAN)])
    messages = prompt.format_messages(context=format_docs(reranked), question=question)
    answer = f"The context answers: {question}"
    return {"retrieved": retrieved, "reranked": reranked, "messages": messages,
            "answer": answer, "usage": usage_for(messages, answer)}


def test_invoke_stores_langchain_tree_documents_and_llm_metadata(db_url: str) -> None:
    rid = uuid.uuid4()
    collector = RunCollectorCallbackHandler()
    with Trail(db_url, app_name="support-bot") as trail:
        handler = RagtrailCallbackHandler(trail, user_id="u-42", session_id="s-1",
                                          app_version="1.4.0")
        answer = build_rag_chain().invoke(
            QUESTION, config={"callbacks": [handler, collector], "run_id": rid,
                              "metadata": {"request_type": "chat"}})
        lineage = stored(trail, rid)
        expected_user_hash = trail.redactor.hash_user("u-42")

    expected = expected_call(QUESTION)
    assert answer == expected["answer"]
    assert handler.last_trace_id == str(rid) == lineage.trace_id
    assert_same_tree(lineage, collector.traced_runs)
    assert [str(r.kind) for r in lineage.runs if r.kind is not RunKind.CHAIN] == [
        "retriever", "reranker", "prompt", "llm", "parser"]
    assert lineage.question == QUESTION and lineage.answer == answer

    root = lineage.run(str(rid))
    assert root.status is RunStatus.OK and root.environment
    assert (root.app_name, root.app_version, root.session_id, root.request_type) == (
        "support-bot", "1.4.0", "s-1", "chat")
    assert root.user_hash == expected_user_hash
    assert all(r.user_hash == expected_user_hash for r in lineage.runs)
    assert "u-42" not in str([r.metadata for r in lineage.runs])

    # Documents by stage: retrieved with the retriever's scores, reranked with the
    # reranker's scores and input positions, in prompt = the reranked ones.
    retrieved = lineage.documents_at(DocStage.RETRIEVED)
    assert [(d.document_id, d.rank, d.score) for d in retrieved] == [
        (d.id, i, d.metadata["score"]) for i, d in enumerate(expected["retrieved"])]
    assert all(d.content_hash == content_hash(d.content or "") for d in retrieved)
    assert retrieved[0].metadata["source"] == retrieved[0].document_id
    reranked = lineage.documents_at(DocStage.RERANKED)
    source_ids = [d.id for d in expected["retrieved"]]
    assert [(d.document_id, d.rank, d.score, d.input_rank) for d in reranked] == [
        (d.id, i, d.metadata["relevance_score"], source_ids.index(d.id))
        for i, d in enumerate(expected["reranked"])]
    assert {d.run_id for d in reranked} == {
        r.id for r in lineage.runs if r.kind is RunKind.RERANKER}
    in_prompt = lineage.documents_at(DocStage.IN_PROMPT)
    assert {d.document_id for d in in_prompt} == {d.id for d in expected["reranked"]}
    llm_run = next(r for r in lineage.runs if r.kind is RunKind.LLM)
    assert {d.run_id for d in in_prompt} == {llm_run.id}

    # The LLM call, field by field.
    (call,) = lineage.llm_calls
    meta = call.metadata
    assert call.run_id == llm_run.id
    assert (meta.provider, meta.provider_model) == (PROVIDER, MODEL)
    params = meta.request_parameters
    assert params is not None
    assert (params.model, params.temperature, params.max_tokens, params.seed) == (
        MODEL, 0.2, 256, 7)
    assert [m["role"] for m in meta.messages or []] == ["system", "user"]
    assert [m["content"] for m in meta.messages or []] == [
        m.content for m in expected["messages"]]
    assert meta.output_text == answer
    usage = expected["usage"]
    assert meta.token_usage == LLMTokenUsage(
        input_tokens=usage["input_tokens"], output_tokens=usage["output_tokens"],
        total_tokens=usage["total_tokens"], cache_read_tokens=64, cache_creation_tokens=0,
        reasoning_tokens=3)
    response = meta.response_metadata
    assert response is not None
    assert (response.finish_reason, response.model_version, response.request_id,
            response.system_fingerprint) == ("stop", MODEL_VERSION, "req_abc123", "fp_test01")
    limits = meta.rate_limit_info
    assert limits is not None
    assert (limits.requests_limit, limits.requests_remaining, limits.tokens_limit,
            limits.tokens_remaining) == (10000, 9999, 200000, 199500)
    assert meta.request_timestamp is not None and meta.response_timestamp is not None
    assert limits.requests_reset_at is not None and limits.tokens_reset_at is not None
    assert (meta.request_timestamp + timedelta(minutes=6) <= limits.requests_reset_at
            <= meta.response_timestamp + timedelta(minutes=6, seconds=1))
    assert (meta.request_timestamp + timedelta(milliseconds=20) <= limits.tokens_reset_at
            <= meta.response_timestamp + timedelta(seconds=1))
    assert meta.prompt_template == TEMPLATE_TEXT
    assert meta.prompt_template_hash == content_hash(TEMPLATE_TEXT)
    assert meta.prompt_variables == {"context": format_docs(expected["reranked"]),
                                     "question": QUESTION}
    perf = meta.performance_metrics
    assert perf is not None and perf.total_duration_ms is not None
    assert perf.time_to_first_token_ms is None  # not streamed

    # Cost: what ragtrail's pricing gives for the same usage, a real Decimal.
    price = Pricer().cost(meta.token_usage, model=MODEL, provider=PROVIDER,
                          at=meta.request_timestamp)
    assert meta.cost_metrics is not None and price.total_cost is not None
    assert meta.cost_metrics.total_cost == price.total_cost > 0
    assert lineage.total_cost == price.total_cost
    assert lineage.total_tokens == usage["total_tokens"]


def _invoke(chain: Any, questions: list[str], configs: list[dict[str, Any]]) -> list[str]:
    return [chain.invoke(q, config=c) for q, c in zip(questions, configs, strict=True)]


def _batch(chain: Any, questions: list[str], configs: list[dict[str, Any]]) -> list[str]:
    return list(chain.batch(questions, config=configs))


def _stream(chain: Any, questions: list[str], configs: list[dict[str, Any]]) -> list[str]:
    return ["".join(chain.stream(q, config=c)) for q, c in zip(questions, configs, strict=True)]


async def _ainvoke(chain: Any, questions: list[str], configs: list[dict[str, Any]]) -> list[str]:
    return [await chain.ainvoke(q, config=c) for q, c in zip(questions, configs, strict=True)]


async def _abatch(chain: Any, questions: list[str], configs: list[dict[str, Any]]) -> list[str]:
    return list(await chain.abatch(questions, config=configs))


async def _astream(chain: Any, questions: list[str], configs: list[dict[str, Any]]) -> list[str]:
    answers = []
    for q, c in zip(questions, configs, strict=True):
        answers.append("".join([chunk async for chunk in chain.astream(q, config=c)]))
    return answers


async def _astream_events(
    chain: Any, questions: list[str], configs: list[dict[str, Any]]
) -> list[str]:
    answers = []
    for q, c in zip(questions, configs, strict=True):
        text = ""
        async for event in chain.astream_events(q, config=c, version="v2"):
            if event["event"] == "on_chain_end" and not event["parent_ids"]:
                text = event["data"]["output"]
        answers.append(text)
    return answers


SYNC_FORMS = {"invoke": _invoke, "batch": _batch, "stream": _stream}
ASYNC_FORMS = {"ainvoke": _ainvoke, "abatch": _abatch, "astream": _astream,
               "astream_events": _astream_events}
STREAMED = {"stream", "astream", "astream_events"}
QUESTIONS = ["What does VACUUM do in SQLite?", "Do PostgreSQL readers block writers?"]


def _check_forms(trail: Trail, form: str, answers: list[str], rids: list[uuid.UUID],
                 collector: RunCollectorCallbackHandler) -> None:
    assert answers == [f"The context answers: {q}" for q in QUESTIONS]
    for question, rid in zip(QUESTIONS, rids, strict=True):
        lineage = stored(trail, rid)
        trace_runs = [r for r in collector.traced_runs if r.id == rid]
        assert_same_tree(lineage, trace_runs)
        assert len(lineage.runs) == 12
        assert all(r.status is RunStatus.OK and r.trace_id == str(rid) for r in lineage.runs)
        expected = expected_call(question)
        assert [d.document_id for d in lineage.documents_at(DocStage.RETRIEVED)] == [
            d.id for d in expected["retrieved"]]
        assert [d.document_id for d in lineage.documents_at(DocStage.RERANKED)] == [
            d.id for d in expected["reranked"]]
        assert {d.document_id for d in lineage.documents_at(DocStage.IN_PROMPT)} == {
            d.id for d in expected["reranked"]}
        (call,) = lineage.llm_calls
        usage = call.metadata.token_usage
        assert usage is not None
        assert usage.total_tokens == expected["usage"]["total_tokens"]
        assert call.metadata.output_text == expected["answer"]
        assert call.metadata.cost_metrics is not None
        assert call.metadata.cost_metrics.total_cost is not None
        perf = call.metadata.performance_metrics
        assert perf is not None
        if form in STREAMED:
            assert perf.time_to_first_token_ms is not None
            assert perf.time_to_first_token_ms <= (perf.total_duration_ms or 0)
            assert perf.tokens_per_second is not None and perf.tokens_per_second > 0
        else:
            assert perf.time_to_first_token_ms is None


def _configs(handler: RagtrailCallbackHandler, collector: RunCollectorCallbackHandler,
             rids: list[uuid.UUID]) -> list[dict[str, Any]]:
    return [{"callbacks": [handler, collector], "run_id": rid} for rid in rids]


@pytest.mark.parametrize("form", sorted(SYNC_FORMS))
def test_sync_forms(trail: Trail, form: str) -> None:
    handler, collector = RagtrailCallbackHandler(trail), RunCollectorCallbackHandler()
    rids = [uuid.uuid4() for _ in QUESTIONS]
    answers = SYNC_FORMS[form](build_rag_chain(), QUESTIONS, _configs(handler, collector, rids))
    _check_forms(trail, form, answers, rids, collector)


@pytest.mark.parametrize("form", sorted(ASYNC_FORMS))
async def test_async_forms(trail: Trail, form: str) -> None:
    handler, collector = RagtrailCallbackHandler(trail), RunCollectorCallbackHandler()
    rids = [uuid.uuid4() for _ in QUESTIONS]
    answers = await ASYNC_FORMS[form](build_rag_chain(), QUESTIONS,
                                      _configs(handler, collector, rids))
    _check_forms(trail, form, answers, rids, collector)


def test_streamed_usage_comes_from_the_final_chunk(trail: Trail) -> None:
    rid = uuid.uuid4()
    handler = RagtrailCallbackHandler(trail)
    chunks = list(build_rag_chain().stream(QUESTION, config={"callbacks": [handler],
                                                             "run_id": rid}))
    assert len(chunks) > 3
    (call,) = stored(trail, rid).llm_calls
    expected = expected_call(QUESTION)["usage"]
    usage = call.metadata.token_usage
    assert usage is not None
    assert (usage.input_tokens, usage.output_tokens, usage.cache_read_tokens,
            usage.reasoning_tokens) == (expected["input_tokens"], expected["output_tokens"],
                                        64, 3)
    response = call.metadata.response_metadata
    assert response is not None and response.finish_reason == "stop"


class ChatAcme(FakeOpenAIChat):
    """Reports no ls_provider / ls_model_name, like many community integrations."""

    reports_provider: bool = True

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> Any:
        return {}

    def _metadata(self) -> dict[str, Any]:
        meta = super()._metadata()
        if not self.reports_provider:
            del meta["model_provider"]
        return meta


@pytest.mark.parametrize(("reports_provider", "provider"), [(True, PROVIDER), (False, "acme")])
def test_provider_without_ls_params(trail: Trail, reports_provider: bool,
                                    provider: str) -> None:
    rid = uuid.uuid4()
    ChatAcme(model_name="acme-1", reports_provider=reports_provider).invoke("hi", config={
        "callbacks": [RagtrailCallbackHandler(trail)], "run_id": rid})
    (call,) = stored(trail, rid).llm_calls
    # The response's model_provider, else the class name; the model from the params.
    assert (call.metadata.provider, call.metadata.provider_model) == (provider, "acme-1")
    cost = call.metadata.cost_metrics
    assert cost is not None and cost.total_cost is None
    assert str(cost.price_status) == "unknown_model"


class FloodRetriever(BaseRetriever):
    """Returns far more documents than any prompt holds."""

    count: int = 1_000

    def _get_relevant_documents(self, query: str, *, run_manager: Any) -> list[Document]:
        return [Document(page_content=f"chunk {i} " + "x" * 5_000, metadata={"i": i})
                for i in range(self.count)]


def test_a_retriever_flood_keeps_the_first_documents_and_the_run(sqlite_url: str) -> None:
    # 1,000 documents of 5 KB would make a record larger than this writer's queue
    # (refused as too large, the whole run lost); the cap keeps it storable.
    with Trail(sqlite_url, capture=CaptureConfig(max_documents_per_stage=50),
               writer=WriterConfig(max_queue_bytes=2 * 1024 * 1024)) as trail:
        handler = RagtrailCallbackHandler(trail)
        FloodRetriever().invoke("q", config={"callbacks": [handler]})
        lineage = stored(trail, handler.last_trace_id)
        assert trail.stats()["writer"]["dropped"] == {}
    (run,) = lineage.runs
    assert run.kind is RunKind.RETRIEVER and run.truncated
    assert run.metadata["documents_cut"] == {"retrieved": 950}
    assert [d.rank for d in lineage.documents] == list(range(50))
    assert lineage.documents[0].content is not None
    assert lineage.documents[0].content.startswith("chunk 0 ")


SECRETS = ("sk-proj-AbCdEf0123456789AbCdEf0123456789", "jane.doe@example.com",
           "AKIAIOSFODNN7EXAMPLE", "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
           "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N",
           "plain-secret-value-123")


def test_secrets_in_the_question_and_metadata_reach_no_stored_column(db_url: str) -> None:
    # Through every step (inputs, outputs, prompt messages, template variables, the
    # LLM call's metadata, run metadata): nothing of a credential is stored.
    question = ("what is wal? key " + SECRETS[0] + ", mail " + SECRETS[1] + ", aws "
                + SECRETS[2] + ", gh " + SECRETS[3] + ", jwt " + SECRETS[4])
    with Trail(db_url) as trail:
        build_rag_chain().invoke(question, config={
            "callbacks": [RagtrailCallbackHandler(trail, user_id=SECRETS[1])],
            "metadata": {"note": SECRETS[0], "api_key": SECRETS[5]}})
        assert trail.flush(10)
        with trail.store.engine.connect() as conn:
            dumped = [str(value)
                      for table in ("runs", "llm_calls", "documents", "document_links")
                      for row in conn.execute(sa.text(f"select * from {table}"))
                      for value in row]
    assert len(dumped) > 100  # the trace was stored
    leaks = {secret[:10] for secret in SECRETS for value in dumped if secret in value}
    assert leaks == set()


def test_run_metadata_overrides_the_handlers_user_and_session_per_invocation(
        sqlite_url: str) -> None:
    with Trail(sqlite_url) as trail:
        handler = RagtrailCallbackHandler(trail, user_id="u-default", session_id="s-default")
        chain = build_rag_chain()
        rids = [uuid.uuid4(), uuid.uuid4()]
        chain.invoke(QUESTION, config={"callbacks": [handler], "run_id": rids[0]})
        chain.invoke(QUESTION, config={"callbacks": [handler], "run_id": rids[1],
                                       "metadata": {"user_id": "u-7", "session_id": "s-9",
                                                    "app_name": "other-app"}})
        roots = [stored(trail, rid).run(str(rid)) for rid in rids]
        hashes = [trail.redactor.hash_user(u) for u in ("u-default", "u-7")]
    assert [(r.user_hash, r.session_id, r.app_name) for r in roots] == [
        (hashes[0], "s-default", None), (hashes[1], "s-9", "other-app")]
    assert "u-7" not in str(roots[1].metadata)
