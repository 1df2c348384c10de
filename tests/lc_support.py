"""Shared LangChain test parts: a fake OpenAI-like chat model, a scored retriever, a
reranking step, the LCEL RAG chain built from them, and LangChain's own run tree.

Everything is real langchain-core machinery; only the model's answer is made up.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from operator import itemgetter
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.base import LangSmithParams
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable, RunnableLambda, RunnableParallel, RunnablePassthrough
from langchain_core.tracers.schemas import Run as LCRun
from langchain_core.vectorstores import InMemoryVectorStore

from ragtrail import Trail
from ragtrail.query import Lineage
from ragtrail.schemas import content_hash

MODEL = "gpt-4o-mini"
MODEL_VERSION = "gpt-4o-mini-2024-07-18"
PROVIDER = "openai"
SYSTEM = "Answer from the context only. Cite sources."
HUMAN = "Context:\n{context}\n\nQuestion: {question}"
TEMPLATE_TEXT = f"system: {SYSTEM}\nhuman: {HUMAN}"
RATE_HEADERS = {
    "x-request-id": "req_abc123",
    "x-ratelimit-limit-requests": "10000",
    "x-ratelimit-remaining-requests": "9999",
    "x-ratelimit-reset-requests": "6m0s",
    "x-ratelimit-limit-tokens": "200000",
    "x-ratelimit-remaining-tokens": "199500",
    "x-ratelimit-reset-tokens": "20ms",
}
CORPUS = [
    ("doc-wal", "SQLite WAL mode lets readers proceed while a single writer appends to the log."),
    ("doc-vacuum", "VACUUM rebuilds the SQLite database file and reclaims free pages."),
    ("doc-pg", "PostgreSQL uses MVCC so readers never block writers."),
    ("doc-jsonb", "JSONB columns in PostgreSQL support GIN indexes for containment queries."),
    ("doc-fts", "SQLite FTS5 provides full text search with ranking functions."),
    ("doc-locks", "A writer in SQLite takes a RESERVED lock before it writes pages."),
]
_WORD = re.compile(r"[a-z0-9]+")


def usage_for(messages: list[BaseMessage], answer: str) -> dict[str, Any]:
    """Deterministic token counts (words) with cache and reasoning details."""
    prompt_words = sum(len(str(m.content).split()) for m in messages)
    output = len(answer.split()) + 3
    return {
        "input_tokens": prompt_words + 100,
        "output_tokens": output,
        "total_tokens": prompt_words + 100 + output,
        "input_token_details": {"cache_read": 64, "cache_creation": 0},
        "output_token_details": {"reasoning": 3},
    }


class FakeOpenAIChat(BaseChatModel):
    """Answers with the question it saw; reports usage and metadata like ChatOpenAI."""

    model_name: str = MODEL
    temperature: float = 0.2
    max_tokens: int = 256
    seed: int = 7
    fail_times: int = 0  # raise this many times before answering (for retries)
    calls: int = 0

    @property
    def _llm_type(self) -> str:
        return "fake-openai-chat"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model": self.model_name, "temperature": self.temperature,
                "max_tokens": self.max_tokens, "seed": self.seed, "n": 1}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        return LangSmithParams(ls_provider=PROVIDER, ls_model_name=self.model_name,
                               ls_model_type="chat", ls_temperature=self.temperature,
                               ls_max_tokens=self.max_tokens)

    def _answer(self, messages: list[BaseMessage]) -> str:
        self.calls += 1
        if self.calls <= self.fail_times:
            raise ConnectionError(f"simulated outage #{self.calls}")
        question = str(messages[-1].content).rsplit("Question:", 1)[-1].strip()
        return f"The context answers: {question}"

    def _metadata(self) -> dict[str, Any]:
        return {"finish_reason": "stop", "model_name": MODEL_VERSION,
                "system_fingerprint": "fp_test01", "id": "chatcmpl-test",
                "model_provider": PROVIDER, "headers": dict(RATE_HEADERS)}

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        answer = self._answer(messages)
        message = AIMessage(content=answer, usage_metadata=usage_for(messages, answer),
                            response_metadata=self._metadata())
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        answer = self._answer(messages)
        for i, word in enumerate(answer.split(" ")):
            text = word if i == 0 else f" {word}"
            yield ChatGenerationChunk(message=AIMessageChunk(content=text))
        # Like OpenAI with stream_options.include_usage: usage only in the last chunk.
        last = AIMessageChunk(content="", usage_metadata=usage_for(messages, answer),
                              response_metadata=self._metadata(), chunk_position="last")
        yield ChatGenerationChunk(message=last)


class ScoredRetriever(BaseRetriever):
    """Similarity search over an in-memory vector store, with the score in metadata."""

    store: InMemoryVectorStore
    k: int = 4

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        pairs = self.store.similarity_search_with_score(query, k=self.k)
        return [Document(id=doc.id, page_content=doc.page_content,
                         metadata={**doc.metadata, "score": round(float(score), 6)})
                for doc, score in pairs]


def make_retriever(k: int = 4) -> ScoredRetriever:
    """A retriever over :data:`CORPUS` with a deterministic fake embedding."""
    return ScoredRetriever(store=make_vector_store(), k=k)


def overlap(question: str, text: str) -> float:
    """Share of the question's words found in ``text``."""
    words = set(_WORD.findall(question.lower()))
    return len(words & set(_WORD.findall(text.lower()))) / max(len(words), 1)


def rerank(inputs: dict[str, Any], top_n: int = 2) -> list[Document]:
    """Keep the ``top_n`` documents with most question words, scored like a compressor."""
    scored = sorted(inputs["documents"],
                    key=lambda d: (-overlap(inputs["question"], d.page_content), d.id))
    return [Document(id=d.id, page_content=d.page_content,
                     metadata={**d.metadata,
                               "relevance_score": overlap(inputs["question"], d.page_content)})
            for d in scored[:top_n]]


def format_docs(documents: list[Document]) -> str:
    """The documents as they appear in the prompt."""
    return "\n\n".join(f"[{d.id}] {d.page_content}" for d in documents)


def build_rag_chain(model: BaseChatModel | None = None, retriever: BaseRetriever | None = None,
                    reranker: Runnable[Any, Any] | None = None) -> Runnable[str, str]:
    """retriever -> reranker -> prompt -> chat model -> string, as one LCEL chain."""
    prompt = ChatPromptTemplate.from_messages([("system", SYSTEM), ("human", HUMAN)])
    step = reranker or RunnableLambda(rerank, name="rerank")
    return (
        RunnableParallel(documents=retriever or make_retriever(), question=RunnablePassthrough())
        | RunnableParallel(context=step | RunnableLambda(format_docs, name="format_docs"),
                           question=itemgetter("question"))
        | prompt
        | (model or FakeOpenAIChat())
        | StrOutputParser()
    )


def flatten(runs: list[LCRun]) -> list[LCRun]:
    """Every run of LangChain's collected trees, parents before children."""
    out: list[LCRun] = []
    stack = list(reversed(runs))
    while stack:
        run = stack.pop()
        out.append(run)
        stack.extend(reversed(run.child_runs))
    return out


def lc_tree(runs: list[LCRun]) -> dict[str, tuple[str | None, str, str]]:
    """run id -> (parent id, name, run type) as LangChain's tracer saw it."""
    return {str(r.id): (str(r.parent_run_id) if r.parent_run_id else None, r.name, r.run_type)
            for r in flatten(runs)}


# -- fixtures and checks shared by the LangChain tests ------------------------------

#: LangChain run_type -> the ragtrail kind it must be stored as.
KIND_OF_RUN_TYPE = {"chain": "chain", "prompt": "prompt", "parser": "parser", "llm": "llm",
                    "chat_model": "llm", "retriever": "retriever", "tool": "tool"}


def open_trail(sqlite_url: str) -> Iterator[Trail]:
    """A Trail on a fresh SQLite file, closed after the test.

    Test modules make it their ``trail`` fixture: ``trail = pytest.fixture(open_trail)``.
    """
    with Trail(sqlite_url) as opened:
        yield opened


def stored(trail: Trail, run_id: object) -> Lineage:
    """Flush, then read the lineage of the trace holding ``run_id``."""
    assert trail.flush(10.0)
    return trail.lineage(str(run_id))


def assert_same_tree(lineage: Lineage, collected: list[LCRun],
                     kinds: Mapping[str, str] | None = None) -> None:
    """The stored runs are LangChain's runs: same ids, parents, names, mapped types.

    ``kinds`` maps run names to the kind expected instead (default: ``rerank`` is a
    reranker). Stored runs LangChain does not know (inferred rerankers) are ignored.
    """
    overrides = {"rerank": "reranker"} if kinds is None else kinds
    expected = {
        rid: (parent, name, overrides.get(name) or KIND_OF_RUN_TYPE[run_type])
        for rid, (parent, name, run_type) in lc_tree(collected).items()
    }
    got = {run.id: (run.parent_id, run.name, str(run.kind)) for run in lineage.runs
           if run.id in expected}
    assert got == expected


# -- tool-calling agents (LangGraph, create_agent) ------------------------------------


class ToolCallingChat(FakeOpenAIChat):
    """:class:`FakeOpenAIChat` that calls its first bound tool when the last message is
    the user's, and answers once a tool result came back (like a model following a
    ReAct prompt). Deterministic per question, so concurrent requests are safe.

    ``bind_tools`` is the only addition to a real chat model here: it binds the tools in
    OpenAI's format, as ``ChatOpenAI.bind_tools`` does, so LangChain reports them in the
    invocation params.
    """

    def bind_tools(self, tools: Any, *, tool_choice: Any = None,
                   **kwargs: Any) -> Runnable[Any, BaseMessage]:
        from langchain_core.utils.function_calling import convert_to_openai_tool

        bound = [convert_to_openai_tool(t) for t in tools]
        extra = {"tool_choice": tool_choice} if tool_choice else {}
        return self.bind(tools=bound, **extra, **kwargs)

    def _decide(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> AIMessage:
        tools = kwargs.get("tools") or []
        last = messages[-1]
        if tools and last.type == "human":
            question = str(last.content)
            name = tools[0]["function"]["name"]
            call_id = "call_" + content_hash(question)[:12]
            return AIMessage(content="", tool_calls=[
                {"name": name, "args": {"query": question}, "id": call_id}],
                usage_metadata=usage_for(messages, question),
                response_metadata={**self._metadata(), "finish_reason": "tool_calls"})
        human = next((m for m in reversed(messages) if m.type == "human"), last)
        answer = f"The context answers: {human.content}"
        return AIMessage(content=answer, usage_metadata=usage_for(messages, answer),
                         response_metadata=self._metadata())

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None,
                  **kwargs: Any) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self._decide(messages, kwargs))])

    def _stream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                run_manager: CallbackManagerForLLMRun | None = None,
                **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        import json

        message = self._decide(messages, kwargs)
        if message.tool_calls:
            call = message.tool_calls[0]
            yield ChatGenerationChunk(message=AIMessageChunk(content="", tool_call_chunks=[
                {"name": call["name"], "args": json.dumps(call["args"]), "id": call["id"],
                 "index": 0}]))
        else:
            for i, word in enumerate(str(message.content).split(" ")):
                yield ChatGenerationChunk(message=AIMessageChunk(content=word if i == 0
                                                                 else f" {word}"))
        yield ChatGenerationChunk(message=AIMessageChunk(
            content="", usage_metadata=message.usage_metadata,
            response_metadata=message.response_metadata, chunk_position="last"))


def make_vector_store() -> InMemoryVectorStore:
    """:data:`CORPUS` in an in-memory vector store with a deterministic fake embedding."""
    store = InMemoryVectorStore(DeterministicFakeEmbedding(size=32))
    store.add_documents([Document(id=doc_id, page_content=text, metadata={"source": doc_id})
                         for doc_id, text in CORPUS])
    return store


def make_retrieve_tool(store: InMemoryVectorStore, k: int = 2) -> Any:
    """The "Build a RAG App: Part 2" retrieve tool: content and artifact (the documents,
    with their similarity score in metadata)."""
    from langchain_core.tools import tool

    @tool(response_format="content_and_artifact")
    def retrieve(query: str) -> tuple[str, list[Document]]:
        """Retrieve information related to a query."""
        pairs = store.similarity_search_with_score(query, k=k)
        docs = [Document(id=d.id, page_content=d.page_content,
                         metadata={**d.metadata, "score": round(float(s), 6)})
                for d, s in pairs]
        serialized = "\n\n".join(f"Source: {d.metadata}\nContent: {d.page_content}"
                                 for d in docs)
        return serialized, docs

    return retrieve


def build_rag_graph(model: BaseChatModel, store: InMemoryVectorStore, *,
                    checkpointer: Any = None) -> Any:
    """The "Build a RAG App: Part 2" graph: StateGraph(MessagesState), query_or_respond
    -> ToolNode(retrieve) -> generate, with tools_condition, compiled with a checkpointer."""
    from langchain_core.messages import SystemMessage
    from langgraph.graph import END, MessagesState, StateGraph
    from langgraph.prebuilt import ToolNode, tools_condition

    retrieve = make_retrieve_tool(store)

    def query_or_respond(state: MessagesState) -> dict[str, Any]:
        response = model.bind_tools([retrieve]).invoke(state["messages"])  # type: ignore[attr-defined]
        return {"messages": [response]}

    def generate(state: MessagesState) -> dict[str, Any]:
        recent = []
        for message in reversed(state["messages"]):
            if message.type != "tool":
                break
            recent.append(message)
        docs_content = "\n\n".join(str(m.content) for m in reversed(recent))
        system = ("You are an assistant for question-answering tasks. Use the following "
                  "pieces of retrieved context to answer the question.\n\n" + docs_content)
        conversation = [m for m in state["messages"]
                        if m.type in ("human", "system") or (m.type == "ai" and not m.tool_calls)]
        return {"messages": [model.invoke([SystemMessage(system), *conversation])]}

    builder = StateGraph(MessagesState)
    builder.add_node(query_or_respond)
    builder.add_node(ToolNode([retrieve]))
    builder.add_node(generate)
    builder.set_entry_point("query_or_respond")
    builder.add_conditional_edges("query_or_respond", tools_condition,
                                  {END: END, "tools": "tools"})
    builder.add_edge("tools", "generate")
    builder.add_edge("generate", END)
    return builder.compile(checkpointer=checkpointer)
