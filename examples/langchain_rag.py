"""An offline LCEL RAG chain recorded by ragtrail, then the lineage of its answer.

    python examples/langchain_rag.py                 # $RAGTRAIL_URL, else ./ragtrail.db
    python examples/langchain_rag.py /tmp/demo.db    # a SQLite file of your choice

The chain is retriever -> reranker -> prompt -> chat model -> string parser, built from
langchain-core parts. The chat model is a stand-in that answers from the context without
a network (it reports usage like gpt-4o-mini would, so the cost is real pricing).
"""

from __future__ import annotations

import re
import sys
import zlib
from operator import itemgetter
from typing import Any

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable, RunnableLambda, RunnableParallel, RunnablePassthrough
from langchain_core.vectorstores import InMemoryVectorStore

from ragtrail import Trail
from ragtrail_langchain import RagtrailCallbackHandler

QUESTION = "How do readers and a writer share an SQLite database in WAL mode?"
KNOWLEDGE = {
    "sqlite-wal": "In WAL mode readers keep reading the database while one writer appends "
                  "changes to the write-ahead log.",
    "sqlite-checkpoint": "A checkpoint copies pages from the write-ahead log back into the "
                         "database file.",
    "sqlite-locks": "Without WAL, a writer needs an exclusive lock and readers must wait.",
    "pg-mvcc": "PostgreSQL keeps row versions (MVCC) so readers never block writers.",
    "pg-vacuum": "VACUUM removes dead row versions in PostgreSQL.",
}
_WORDS = re.compile(r"[a-z]+")
_STOP = {"a", "an", "and", "do", "does", "how", "in", "is", "the", "to", "of", "so"}


def _words(text: str) -> set[str]:
    return set(_WORDS.findall(text.lower())) - _STOP


class WordEmbeddings(Embeddings):
    """Bag-of-words vectors (hashed words): crude, offline and deterministic."""

    size: int = 256

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.embed_query(text) for text in texts]

    def embed_query(self, text: str) -> list[float]:
        vector = [0.0] * self.size
        for word in _words(text):
            vector[zlib.crc32(word.encode()) % self.size] += 1.0
        return vector


class ScoredRetriever(BaseRetriever):
    """Similarity search that keeps the similarity in each document's metadata."""

    store: InMemoryVectorStore
    k: int = 4

    def _get_relevant_documents(self, query: str, *, run_manager: Any) -> list[Document]:
        return [Document(id=d.id, page_content=d.page_content,
                         metadata={**d.metadata, "score": round(score, 3)})
                for d, score in self.store.similarity_search_with_score(query, k=self.k)]


class OfflineChatModel(BaseChatModel):
    """Answers with the context sentence sharing most words with the question."""

    model_name: str = "gpt-4o-mini"

    @property
    def _llm_type(self) -> str:
        return "offline-demo-chat"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model": self.model_name, "temperature": 0.0}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> Any:
        return {"ls_provider": "openai", "ls_model_name": self.model_name,
                "ls_model_type": "chat", "ls_temperature": 0.0}

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: Any = None, **kwargs: Any) -> ChatResult:
        prompt = str(messages[-1].content)
        context, _, question = prompt.partition("Question:")
        sentences = [line.split("] ", 1)[-1] for line in context.splitlines() if "] " in line]
        answer = max(sentences, key=lambda s: len(_words(s) & _words(question)),
                     default="The context does not say.")
        prompt_tokens = sum(len(str(m.content).split()) * 4 // 3 for m in messages)
        output_tokens = len(answer.split()) * 4 // 3
        message = AIMessage(content=answer, response_metadata={
            "finish_reason": "stop", "model_name": self.model_name},
            usage_metadata={"input_tokens": prompt_tokens, "output_tokens": output_tokens,
                            "total_tokens": prompt_tokens + output_tokens})
        return ChatResult(generations=[ChatGeneration(message=message)])


def rerank(inputs: dict[str, Any]) -> list[Document]:
    """Keep the two documents sharing most words with the question, scored."""
    question = _words(inputs["question"])
    scored = [(len(question & _words(d.page_content)) / len(question), d)
              for d in inputs["documents"]]
    scored.sort(key=lambda pair: -pair[0])
    return [Document(id=d.id, page_content=d.page_content,
                     metadata={**d.metadata, "relevance_score": round(score, 3)})
            for score, d in scored[:2]]


def build_chain(model_name: str = "gpt-4o-mini") -> Runnable[str, str]:
    """retriever -> reranker -> prompt -> chat model -> string."""
    store = InMemoryVectorStore(WordEmbeddings())
    store.add_documents([Document(id=key, page_content=text, metadata={"source": key})
                         for key, text in KNOWLEDGE.items()])
    retriever = ScoredRetriever(store=store)
    prompt = ChatPromptTemplate.from_messages([
        ("system", "Answer from the context only."),
        ("human", "Context:\n{context}\n\nQuestion: {question}"),
    ])
    format_docs = RunnableLambda(
        lambda docs: "\n".join(f"[{d.id}] {d.page_content}" for d in docs), name="format_docs")
    return (
        RunnableParallel(documents=retriever, question=RunnablePassthrough())
        | RunnableParallel(context=RunnableLambda(rerank, name="rerank") | format_docs,
                           question=itemgetter("question"))
        | prompt
        | OfflineChatModel(model_name=model_name)
        | StrOutputParser()
    )


def show(trail: Trail, trace_id: str) -> None:
    """Print the lineage of one answer, read back from the store."""
    lineage = trail.lineage(trace_id)
    print(f"trace     {lineage.trace_id}")
    print(f"question  {lineage.question}")
    for stage in ("retrieved", "reranked", "in_prompt"):
        print(f"{stage}:")
        for use in lineage.documents_at(stage):
            score = f"{use.score:.3f}" if use.score is not None else "-"
            moved = f"  (was #{use.input_rank + 1})" if use.input_rank is not None else ""
            print(f"  #{use.rank + 1} {use.document_id:<18} score {score}{moved}")
    for call in lineage.llm_calls:
        meta = call.metadata
        usage = meta.token_usage
        print(f"prompt    {meta.prompt_template!r}")
        print(f"model     {meta.provider}/{meta.provider_model}")
        if usage is not None:
            print(f"tokens    {usage.input_tokens} in + {usage.output_tokens} out")
    print(f"cost      {lineage.total_cost} USD" if lineage.total_cost is not None
          else "cost      unknown")
    print(f"answer    {lineage.answer}")


def main(db_url: str | None = None) -> str:
    """Run the chain once with ragtrail's handler, print its lineage, return the trace id."""
    with Trail(db_url, app_name="langchain-rag-demo") as trail:
        handler = RagtrailCallbackHandler(trail, session_id="demo")
        build_chain().invoke(QUESTION, config={"callbacks": [handler]})
        trail.flush()
        trace_id = handler.last_trace_id
        if trace_id is None:
            raise RuntimeError("the run was not recorded")
        show(trail, trace_id)
        return trace_id


if __name__ == "__main__":
    arg = sys.argv[1] if len(sys.argv) > 1 else None
    main(arg if arg is None or "://" in arg else f"sqlite:///{arg}")
