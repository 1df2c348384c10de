"""Shared LlamaIndex test helpers: offline models, a reranker, a span collector.

Everything here is a real LlamaIndex component (subclasses of its public base
classes), deterministic and offline: no model is ever loaded from a hub.
"""

from __future__ import annotations

import gc
import inspect
import math
import re
import zlib
from collections.abc import Iterator, Sequence
from typing import Any

from llama_index.core import Document, Settings, VectorStoreIndex
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    CompletionResponse,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
    ToolCallBlock,
)
from llama_index.core.bridge.pydantic import Field
from llama_index.core.embeddings import BaseEmbedding
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.span import SimpleSpan
from llama_index.core.instrumentation.span_handlers import BaseSpanHandler
from llama_index.core.llms import CustomLLM, MockLLM
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.mock import MockFunctionCallingLLM
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from ragtrail_llamaindex import RagtrailHandler, instrument, uninstrument

__all__ = [
    "CORPUS",
    "ChoiceLLM",
    "KeywordEmbedding",
    "KeywordReranker",
    "NamedMockLLM",
    "SpanCollector",
    "UsageLLM",
    "build_index",
    "enable",
    "reset_llamaindex",
    "scripted_tool_llm",
    "tree_shape",
]

#: Documents of the test corpus: (doc id, text). Word overlap with the queries below
#: decides retrieval and reranking order, so both are predictable.
CORPUS = [
    ("wal", "SQLite write ahead logging lets readers continue while a writer appends."),
    ("vacuum", "VACUUM rebuilds the SQLite database file and reclaims free pages."),
    ("mvcc", "PostgreSQL uses multi version concurrency control so readers never block."),
    ("jsonb", "PostgreSQL stores JSONB documents and indexes them with GIN indexes."),
    ("pragma", "SQLite PRAGMA statements change how the write ahead logging journal works."),
]
_WORD = re.compile(r"[a-z0-9]+")
_DIM = 128


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


class KeywordEmbedding(BaseEmbedding):
    """Hashed bag of words: texts sharing words are close. Deterministic, offline."""

    def _vector(self, text: str) -> list[float]:
        vector = [0.0] * _DIM
        for word in _words(text):
            vector[zlib.crc32(word.encode()) % _DIM] += 1.0
        norm = math.sqrt(sum(v * v for v in vector)) or 1.0
        return [v / norm for v in vector]

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._vector(query)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._vector(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._vector(text)


class KeywordReranker(BaseNodePostprocessor):
    """Reranks by how many query words a node contains (ties: shorter text first)."""

    top_n: int = 2

    def _postprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        query = set(_words(query_bundle.query_str if query_bundle else ""))
        scored = []
        for item in nodes:
            text = item.node.get_content()
            hits = sum(1 for w in set(_words(text)) if w in query)
            scored.append((hits, -len(text), item))
        scored.sort(key=lambda t: (t[0], t[1]), reverse=True)
        result = []
        for hits, _, item in scored[: self.top_n]:
            item.score = float(hits)  # rerankers overwrite scores in place, like real ones
            result.append(item)
        return result


class UsageLLM(CustomLLM):
    """A completion model answering with a fixed text and a provider-shaped ``raw``.

    ``shape`` picks the raw response: ``openai`` (chat completions), ``anthropic``
    (messages API) or ``kwargs`` (only LlamaIndex's ``additional_kwargs`` counts).
    """

    model: str = "gpt-4o-mini"
    shape: str = "openai"
    answer: str = "WAL lets readers continue."
    temperature: float = 0.2
    max_tokens: int = 64

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(model_name=self.model, num_output=self.max_tokens)

    def _raw(self) -> dict[str, Any]:
        if self.shape == "anthropic":
            return {"id": "msg_01", "model": self.model, "stop_reason": "end_turn",
                    "usage": {"input_tokens": 100, "output_tokens": 20,
                              "cache_read_input_tokens": 300,
                              "cache_creation_input_tokens": 50}}
        return {"id": "chatcmpl-1", "model": f"{self.model}-2024-07-18",
                "system_fingerprint": "fp_test", "request_id": "req_123",
                "choices": [{"finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1200, "completion_tokens": 40, "total_tokens": 1240,
                          "prompt_tokens_details": {"cached_tokens": 1024},
                          "completion_tokens_details": {"reasoning_tokens": 8}}}

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        if self.shape == "kwargs":
            return CompletionResponse(text=self.answer, additional_kwargs={
                "prompt_tokens": 90, "completion_tokens": 10, "total_tokens": 100})
        return CompletionResponse(text=self.answer, raw=self._raw())

    def _stream_raw(self, index: int, last: bool) -> dict[str, Any]:
        if self.shape != "anthropic":
            return self._raw() if last else {"id": "chatcmpl-1"}
        # Anthropic streams usage in pieces: input at message_start, output at the end.
        if index == 0:
            return {"type": "message_start", "message": {"id": "msg_01", "usage": {
                "input_tokens": 100, "output_tokens": 1, "cache_read_input_tokens": 300,
                "cache_creation_input_tokens": 50}}}
        if last:
            return {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                    "usage": {"output_tokens": 20}}
        return {"type": "content_block_delta"}

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        words = self.answer.split(" ")

        def gen() -> CompletionResponseGen:
            text = ""
            for index, word in enumerate(words):
                delta = word if index == 0 else " " + word
                text += delta
                yield CompletionResponse(text=text, delta=delta,
                                         raw=self._stream_raw(index, index == len(words) - 1))

        return gen()


class NamedMockLLM(MockLLM):
    """LlamaIndex's MockLLM under a model name the price catalogue knows."""

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(model_name="gpt-4o-mini")


class ChoiceLLM(CustomLLM):
    """Answers LlamaIndex's choice-select prompt (LLMRerank) with fixed choices."""

    answer: str = "Doc: 2, Relevance: 9\nDoc: 1, Relevance: 4"
    calls: list[str] = Field(default_factory=list)

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(model_name="choice-model")

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        self.calls.append(prompt)
        return CompletionResponse(text=self.answer)

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        yield CompletionResponse(text=self.answer, delta=self.answer)

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return ChatResponse(message=ChatMessage(role="assistant", content=self.answer))


class SpanCollector(BaseSpanHandler[SimpleSpan]):
    """Only collects: every span LlamaIndex's dispatcher reports, with its parent."""

    spans: dict[str, str | None] = Field(default_factory=dict)

    def new_span(self, id_: str, bound_args: inspect.BoundArguments, instance: Any = None,
                 parent_span_id: str | None = None, tags: Any = None,
                 **kwargs: Any) -> SimpleSpan:
        self.spans[id_] = parent_span_id
        return SimpleSpan(id_=id_, parent_id=parent_span_id)

    def prepare_to_exit_span(self, id_: str, bound_args: inspect.BoundArguments,
                             instance: Any = None, result: Any = None,
                             **kwargs: Any) -> SimpleSpan | None:
        return self.open_spans.get(id_)

    def prepare_to_drop_span(self, id_: str, bound_args: inspect.BoundArguments,
                             instance: Any = None, err: BaseException | None = None,
                             **kwargs: Any) -> SimpleSpan | None:
        return self.open_spans.get(id_)

    def nearest(self, span_id: str | None, recorded: set[str]) -> str | None:
        """The nearest ancestor of ``span_id`` among ``recorded`` span ids."""
        parent = self.spans.get(span_id) if span_id is not None else None
        while parent is not None and parent not in recorded:
            parent = self.spans.get(parent)
        return parent

    def check(self, runs: Sequence[Any]) -> None:
        """Every span-born run is a span, parented to its nearest recorded ancestor."""
        ids = {run.id for run in runs}
        for run in runs:
            if run.metadata.get("inferred") or run.metadata.get("llamaindex_event"):
                continue  # not a span: an inferred step or a rerank event's run
            assert run.id in self.spans, run.name
            assert run.parent_id == self.nearest(run.id, ids), run.name

    def attach(self) -> SpanCollector:
        get_dispatcher().add_span_handler(self)
        return self

    def detach(self) -> None:
        root = get_dispatcher()
        root.span_handlers = [h for h in root.span_handlers if h is not self]


def build_index(embed_model: BaseEmbedding | None = None) -> VectorStoreIndex:
    """An in-memory vector index over :data:`CORPUS`, one node per document."""
    docs = [Document(text=text, doc_id=doc_id, metadata={"source": f"{doc_id}.md"})
            for doc_id, text in CORPUS]
    return VectorStoreIndex.from_documents(docs, embed_model=embed_model or KeywordEmbedding())


def ragtrail_handlers_on_dispatcher() -> list[Any]:
    """Handlers ragtrail put on the root dispatcher (by class name)."""
    root = get_dispatcher()
    return [h for h in [*root.span_handlers, *root.event_handlers]
            if type(h).__name__.startswith("Engine")]


def enable(trail: Any, form: str) -> RagtrailHandler:
    """Enable ragtrail the way ``form`` says: ``instrument`` (root dispatcher),
    ``classic`` (``Settings.callback_manager = CallbackManager([RagtrailHandler])``) or
    ``both`` at once."""
    if form == "instrument":
        return instrument(trail)
    from llama_index.core.callbacks import CallbackManager

    handler = RagtrailHandler(trail)
    Settings.callback_manager = CallbackManager([handler])
    if form == "both":
        instrument(trail)
    return handler


def reset_llamaindex() -> Iterator[None]:
    """Fixture body: global LlamaIndex settings and ragtrail hooks back to a clean state."""
    yield
    Settings._callback_manager = None
    Settings._llm = None
    Settings._embed_model = None
    uninstrument()
    gc.collect()


def nodes_of(texts: Sequence[str]) -> list[NodeWithScore]:
    """Nodes with fixed ids for hand-made postprocessor inputs."""
    return [NodeWithScore(node=TextNode(text=t, id_=f"n{i}"), score=1.0 / (i + 1))
            for i, t in enumerate(texts)]


def scripted_tool_llm(calls: Sequence[tuple[str, dict[str, Any]]], answer: str,
                      seen: list[list[ChatMessage]] | None = None) -> MockFunctionCallingLLM:
    """LlamaIndex's own function-calling mock, scripted: the n-th call of a request asks
    for ``calls[n]`` (n = tool results in its messages, so concurrent requests do not
    mix), then answers ``answer`` + the last tool result. ``seen`` collects the message
    lists the model received (what the provider would have been sent)."""

    def respond(messages: Sequence[ChatMessage], **kwargs: Any) -> ChatMessage:
        if seen is not None:
            seen.append(list(messages))
        done = sum(1 for m in messages if m.role == MessageRole.TOOL)
        if done < len(calls):
            name, arguments = calls[done]
            return ChatMessage(role=MessageRole.ASSISTANT, blocks=[ToolCallBlock(
                tool_call_id=f"call_{done}", tool_name=name, tool_kwargs=arguments)])
        last = next((m.content for m in reversed(messages) if m.role == MessageRole.TOOL), "")
        return ChatMessage(role=MessageRole.ASSISTANT, content=f"{answer} {last}".strip())

    return MockFunctionCallingLLM(response_generator=respond)


def scripted_react_llm(calls: Sequence[tuple[str, dict[str, Any]]], answer: str) -> CustomLLM:
    """A ReAct-format model for LlamaIndex's ``ReActAgent``: its n-th call answers with an
    ``Action`` for ``calls[n]``, then with ``Answer: <answer>`` (one agent run per model)."""
    import json

    class _ReAct(CustomLLM):
        turns: int = 0

        @property
        def metadata(self) -> LLMMetadata:
            return LLMMetadata(model_name="react-model", is_chat_model=False)

        def _reply(self) -> str:
            turn, self.turns = self.turns, self.turns + 1
            if turn < len(calls):
                name, arguments = calls[turn]
                return (f"Thought: I need to use a tool.\nAction: {name}\n"
                        f"Action Input: {json.dumps(arguments)}")
            return f"Thought: I can answer without using any more tools.\nAnswer: {answer}"

        @llm_completion_callback()
        def complete(self, prompt: str, formatted: bool = False,
                     **kwargs: Any) -> CompletionResponse:
            return CompletionResponse(text=self._reply())

        @llm_completion_callback()
        def stream_complete(self, prompt: str, formatted: bool = False,
                            **kwargs: Any) -> CompletionResponseGen:
            text = self._reply()

            def gen() -> CompletionResponseGen:
                yield CompletionResponse(text=text, delta=text)

            return gen()

    return _ReAct()


def tree_shape(lineage: Any, skip: Sequence[str] = ()) -> list[tuple[Any, ...]]:
    """A stored tree as comparable data: per run (kind, path of names from the root,
    status, documents per stage as (stage, content hash, rank, input_rank)), sorted.
    Runs named in ``skip`` (and their subtrees) are left out."""
    by_id = {run.id: run for run in lineage.runs}

    def path(run: Any) -> tuple[str, ...]:
        names = []
        while run is not None:
            names.append(run.name)
            run = by_id.get(run.parent_id)
        return tuple(reversed(names))

    docs: dict[str, list[tuple[Any, ...]]] = {}
    for link in lineage.documents:
        docs.setdefault(link.run_id, []).append(
            (link.stage.value, link.content_hash, link.rank, link.input_rank))
    shape = []
    for run in lineage.runs:
        names = path(run)
        if any(name in skip for name in names):
            continue
        shape.append((run.kind.value, names, run.status.value, tuple(sorted(docs.get(run.id, ())))))
    return sorted(shape)
