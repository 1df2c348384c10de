"""Errors, retries, cancelled streams, custom events, tools and agent actions."""

from __future__ import annotations

import asyncio
import gc
import time
import uuid
from typing import Any

import pytest
import tenacity
from langchain_core.agents import AgentAction, AgentFinish
from langchain_core.callbacks import CallbackManagerForChainRun, dispatch_custom_event
from langchain_core.language_models import BaseLLM
from langchain_core.language_models.llms import create_base_retry_decorator
from langchain_core.outputs import Generation, LLMResult
from langchain_core.runnables import RunnableConfig, RunnableLambda
from langchain_core.tools import tool
from langchain_core.tracers.run_collector import RunCollectorCallbackHandler

from lc_support import FakeOpenAIChat, assert_same_tree, build_rag_chain, open_trail, stored
from ragtrail import Trail
from ragtrail.schemas import RunKind, RunStatus
from ragtrail_langchain import RagtrailCallbackHandler

trail = pytest.fixture(name="trail")(open_trail)

QUESTION = "How does SQLite WAL let readers and a writer work together?"


class RerankerDown(RuntimeError):
    """Raised by the failing reranker."""


class Unprintable(RuntimeError):
    """An application exception whose message cannot be built."""

    def __str__(self) -> str:
        raise ValueError("no message")


def test_an_exception_that_cannot_be_printed_is_stored_with_its_type(trail: Trail) -> None:
    def broken(inputs: Any) -> Any:
        raise Unprintable()

    rid = uuid.uuid4()
    chain = RunnableLambda(lambda q: q, name="first") | RunnableLambda(broken, name="broken")
    with pytest.raises(Unprintable):
        chain.invoke(QUESTION, config={"callbacks": [RagtrailCallbackHandler(trail)],
                                       "run_id": rid})
    lineage = stored(trail, rid)
    assert {r.name: r.status for r in lineage.runs} == {
        lineage.root.name: RunStatus.ERROR, "first": RunStatus.OK, "broken": RunStatus.ERROR}
    failed = next(r for r in lineage.runs if r.name == "broken")
    assert failed.error is not None and failed.error.type == "Unprintable"
    assert failed.error.message == "<unprintable Unprintable: str() raised ValueError>"
    assert failed.error.stack and "broken" in failed.error.stack


def test_error_is_stored_and_the_exception_propagates_unchanged(trail: Trail) -> None:
    raised: list[BaseException] = []

    def broken_rerank(inputs: dict[str, Any]) -> Any:
        raised.append(RerankerDown("reranker unavailable: 503"))
        raise raised[-1]

    rid = uuid.uuid4()
    collector = RunCollectorCallbackHandler()
    handler = RagtrailCallbackHandler(trail)
    chain = build_rag_chain(reranker=RunnableLambda(broken_rerank, name="rerank"))
    with pytest.raises(RerankerDown) as caught:
        chain.invoke(QUESTION, config={"callbacks": [handler, collector], "run_id": rid})
    assert caught.value is raised[0]

    lineage = stored(trail, rid)
    assert_same_tree(lineage, collector.traced_runs, kinds={})
    by_name = {r.name: r for r in lineage.runs}
    failed = by_name["rerank"]
    assert failed.status is RunStatus.ERROR and failed.error is not None
    assert (failed.error.type, failed.error.message) == ("RerankerDown",
                                                         "reranker unavailable: 503")
    ancestors = []
    run = failed
    while run.parent_id is not None:
        run = lineage.run(run.parent_id)
        ancestors.append(run)
    assert ancestors and all(r.status is RunStatus.ERROR for r in ancestors)
    # A failed step produced nothing: no outputs, not a placeholder object's repr.
    assert all(r.outputs is None for r in [failed, *ancestors])
    assert lineage.root is not None and lineage.root.error is not None
    assert lineage.root.error.type == "RerankerDown"
    assert by_name["ScoredRetriever"].status is RunStatus.OK
    assert not {RunKind.PROMPT, RunKind.LLM} & {r.kind for r in lineage.runs}
    assert handler.last_trace_id == str(rid)


def test_with_retry_counts_retries_on_the_retry_run(trail: Trail) -> None:
    rid = uuid.uuid4()
    collector = RunCollectorCallbackHandler()
    model = FakeOpenAIChat(fail_times=2).with_retry(
        retry_if_exception_type=(ConnectionError,), stop_after_attempt=3,
        wait_exponential_jitter=False)
    answer = model.invoke("ping", config={"callbacks": [RagtrailCallbackHandler(trail),
                                                        collector], "run_id": rid})
    assert answer.content == "The context answers: ping"

    lineage = stored(trail, rid)
    assert_same_tree(lineage, collector.traced_runs)
    root = lineage.run(str(rid))
    assert root.retries == 2 and root.status is RunStatus.OK
    attempts = [r for r in lineage.runs if r.kind is RunKind.LLM]
    assert [r.status for r in attempts] == [RunStatus.ERROR, RunStatus.ERROR, RunStatus.OK]
    assert [r.error.type if r.error else None for r in attempts] == [
        "ConnectionError", "ConnectionError", None]
    assert [sorted(t for t in r.tags if t.startswith("retry")) for r in attempts] == [
        [], ["retry:attempt:2"], ["retry:attempt:3"]]
    assert len(lineage.llm_calls) == 3


class FlakyCompletion(BaseLLM):
    """A completion model retrying like provider integrations do (tenacity + on_retry)."""

    failures: int = 2
    calls: int = 0

    @property
    def _llm_type(self) -> str:
        return "flaky-completion"

    def _generate(self, prompts: list[str], stop: list[str] | None = None,
                  run_manager: Any = None, **kwargs: Any) -> LLMResult:
        retrying = create_base_retry_decorator([TimeoutError], max_retries=4,
                                               run_manager=run_manager)

        @retrying
        def call() -> str:
            self.calls += 1
            if self.calls <= self.failures:
                raise TimeoutError("provider timed out")
            return "done"

        text = call.retry_with(wait=tenacity.wait_none())()
        return LLMResult(
            generations=[[Generation(text=text, generation_info={"finish_reason": "stop"})]],
            llm_output={"model_name": "gpt-3.5-turbo-instruct", "token_usage": {
                "prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15,
                "prompt_tokens_details": {"cached_tokens": 4}}},
        )


def test_on_retry_is_counted_and_llm_output_usage_is_the_fallback(trail: Trail) -> None:
    rid = uuid.uuid4()
    assert FlakyCompletion().invoke("Say done", config={
        "callbacks": [RagtrailCallbackHandler(trail)], "run_id": rid}) == "done"
    lineage = stored(trail, rid)
    (run,) = lineage.runs
    assert (run.kind, run.retries, run.name) == (RunKind.LLM, 2, "FlakyCompletion")
    (call,) = lineage.llm_calls
    meta = call.metadata
    assert meta.prompt_text == "Say done" and meta.output_text == "done"
    # A class of the user's own: its provider is inferred from the model it names.
    assert meta.provider == "openai"
    assert meta.provider_specific is not None
    assert meta.provider_specific["provider_inferred"] == {"model": "gpt-3.5-turbo-instruct",
                                                           "by": "genai-prices"}
    assert meta.provider_specific["provider_from_class"] == "flakycompletion"
    assert meta.token_usage is not None
    assert (meta.token_usage.input_tokens, meta.token_usage.output_tokens,
            meta.token_usage.total_tokens, meta.token_usage.cache_read_tokens) == (12, 3, 15, 4)
    assert meta.response_metadata is not None
    assert (meta.response_metadata.finish_reason, meta.response_metadata.model_version) == (
        "stop", "gpt-3.5-turbo-instruct")


# -- cancelled and abandoned streams -----------------------------------------------------


def _assert_cancelled(trail: Trail, rid: uuid.UUID) -> None:
    lineage = stored(trail, rid)
    assert trail.stats()["capture"]["open_runs"] == 0
    assert lineage.run(str(rid)).status is RunStatus.CANCELLED  # the root
    statuses = {r.name: r.status for r in lineage.runs}
    assert statuses["FakeOpenAIChat"] is RunStatus.CANCELLED
    # The parser may not have started yet when the consumer stopped.
    assert statuses.get("StrOutputParser", RunStatus.CANCELLED) is RunStatus.CANCELLED
    assert statuses["ScoredRetriever"] is RunStatus.OK  # finished before the first token
    assert statuses["ChatPromptTemplate"] is RunStatus.OK
    assert len(lineage.runs) in (11, 12)
    assert all(r.status in (RunStatus.OK, RunStatus.CANCELLED) for r in lineage.runs)


def test_sync_stream_closed_early_is_cancelled(trail: Trail) -> None:
    rid = uuid.uuid4()
    stream = build_rag_chain().stream(QUESTION, config={
        "callbacks": [RagtrailCallbackHandler(trail)], "run_id": rid})
    assert next(stream)
    stream.close()  # LangChain reports success here; the handler knows better
    _assert_cancelled(trail, rid)


async def _until_closed(trail: Trail, deadline_s: float = 30.0) -> None:  # hang guard
    """Let the event loop finalize abandoned generators (and the handler's sweep run)."""
    end = time.monotonic() + deadline_s
    while trail.recorder.stats()["open_runs"] and time.monotonic() < end:
        gc.collect()
        await asyncio.sleep(0.05)


async def test_async_stream_closed_early_is_cancelled(trail: Trail) -> None:
    rid = uuid.uuid4()
    stream = build_rag_chain().astream(QUESTION, config={
        "callbacks": [RagtrailCallbackHandler(trail)], "run_id": rid})
    assert await stream.__anext__()
    await stream.aclose()
    await _until_closed(trail)
    _assert_cancelled(trail, rid)


async def test_cancelled_task_is_cancelled(trail: Trail) -> None:
    rid = uuid.uuid4()
    started = asyncio.Event()

    async def consume() -> None:
        async for _ in build_rag_chain().astream(QUESTION, config={
                "callbacks": [RagtrailCallbackHandler(trail)], "run_id": rid}):
            started.set()
            await asyncio.sleep(30)

    task = asyncio.create_task(consume())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await _until_closed(trail)
    _assert_cancelled(trail, rid)


async def test_astream_events_abandoned_is_cancelled_not_left_open(trail: Trail) -> None:
    rid = uuid.uuid4()
    events = build_rag_chain().astream_events(QUESTION, version="v2", config={
        "callbacks": [RagtrailCallbackHandler(trail)], "run_id": rid})
    async for event in events:
        if event["event"] == "on_chat_model_stream":
            break
    await events.aclose()
    await _until_closed(trail)  # one step is never closed by LangChain: the sweep ends it
    _assert_cancelled(trail, rid)
    lineage = stored(trail, rid)
    errors = {r.error.type for r in lineage.runs if r.error is not None}
    assert errors <= {"GeneratorExit", "CancelledError", "StreamAbandoned"}


# -- custom events, tools, agent actions -------------------------------------------------


def test_custom_events_are_kept_on_their_run(trail: Trail) -> None:
    def step(text: str, config: RunnableConfig) -> str:
        dispatch_custom_event("progress", {"done": 1, "of": 2}, config=config)
        dispatch_custom_event("progress", {"done": 2, "of": 2}, config=config)
        return text.upper()

    rid = uuid.uuid4()
    out = RunnableLambda(step, name="step").invoke("x", config={
        "callbacks": [RagtrailCallbackHandler(trail)], "run_id": rid})
    assert out == "X"
    (run,) = stored(trail, rid).runs
    assert [(e["name"], e["data"]) for e in run.events] == [
        ("progress", {"done": 1, "of": 2}), ("progress", {"done": 2, "of": 2})]


@tool
def lookup(term: str) -> str:
    """Look a term up in the glossary."""
    return f"{term}: write-ahead logging"


def test_tool_runs_and_agent_actions(trail: Trail) -> None:
    def agent(question: str, run_manager: CallbackManagerForChainRun) -> str:
        run_manager.on_agent_action(AgentAction(tool="lookup", tool_input="WAL", log="look"))
        observation = lookup.invoke({"term": "WAL"}, config={"callbacks": run_manager.get_child()})
        run_manager.on_agent_finish(AgentFinish({"output": observation}, log="answer"))
        return str(observation)

    rid = uuid.uuid4()
    collector = RunCollectorCallbackHandler()
    RunnableLambda(agent, name="agent").invoke("What is WAL?", config={
        "callbacks": [RagtrailCallbackHandler(trail), collector], "run_id": rid})
    lineage = stored(trail, rid)
    assert_same_tree(lineage, collector.traced_runs, kinds={"agent": "agent"})
    agent_run, tool_run = lineage.runs
    assert (agent_run.kind, tool_run.kind, tool_run.name) == (
        RunKind.AGENT, RunKind.TOOL, "lookup")
    assert [e["name"] for e in agent_run.events] == ["agent_action", "agent_finish"]
    assert agent_run.events[0]["data"]["tool"] == "lookup"
    assert agent_run.events[1]["data"]["return_values"] == {"output": "WAL: write-ahead logging"}
    assert tool_run.inputs == {"term": "WAL"}  # as given to the tool
    assert tool_run.outputs == "WAL: write-ahead logging"


def test_odd_payloads_never_break_the_chain(trail: Trail) -> None:
    class Opaque:
        def __repr__(self) -> str:
            raise ValueError("no repr")

    rid = uuid.uuid4()
    value = {"raw": b"\x00\x01", "set": {3, 1}, "obj": Opaque()}
    out = RunnableLambda(lambda x: x, name="echo").invoke(value, config={
        "callbacks": [RagtrailCallbackHandler(trail)], "run_id": rid})
    assert out is value
    (run,) = stored(trail, rid).runs
    assert run.status is RunStatus.OK and run.inputs["set"] == [1, 3]
