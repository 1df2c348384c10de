"""An offline LlamaIndex query engine recorded by ragtrail, then the lineage of its answer.

    python examples/llamaindex_rag.py                 # $RAGTRAIL_URL, else ./ragtrail.db
    python examples/llamaindex_rag.py /tmp/demo.db    # a SQLite file of your choice

The query engine is vector retriever -> reranking postprocessor -> response synthesizer
-> LLM, built from llama-index-core parts. The embedding and the LLM are stand-ins that
need no network: the LLM answers with the context sentence sharing most words with the
question, and reports usage the way OpenAI's API does, so the cost is real pricing.
"""

from __future__ import annotations

import math
import re
import sys
import zlib
from typing import Any

from llama_index.core import Document, Settings, VectorStoreIndex
from llama_index.core.base.llms.types import (
    CompletionResponse,
    CompletionResponseGen,
    LLMMetadata,
)
from llama_index.core.callbacks import CallbackManager
from llama_index.core.embeddings import BaseEmbedding
from llama_index.core.llms import CustomLLM
from llama_index.core.llms.callbacks import llm_completion_callback
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import NodeWithScore, QueryBundle

from ragtrail import Trail
from ragtrail_llamaindex import RagtrailHandler

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


class WordEmbedding(BaseEmbedding):
    """Bag-of-words vectors (hashed words): crude, offline and deterministic."""

    def _vector(self, text: str) -> list[float]:
        vector = [0.0] * 256
        for word in _words(text):
            vector[zlib.crc32(word.encode()) % 256] += 1.0
        norm = math.sqrt(sum(v * v for v in vector)) or 1.0
        return [v / norm for v in vector]

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._vector(query)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._vector(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._vector(text)


class WordOverlapReranker(BaseNodePostprocessor):
    """Keep the ``top_n`` nodes sharing most words with the question, scored."""

    top_n: int = 2

    def _postprocess_nodes(self, nodes: list[NodeWithScore],
                           query_bundle: QueryBundle | None = None) -> list[NodeWithScore]:
        question = _words(query_bundle.query_str if query_bundle else "")
        scored = [NodeWithScore(node=n.node, score=round(
            len(question & _words(n.node.get_content())) / max(len(question), 1), 3))
            for n in nodes]
        scored.sort(key=lambda n: -(n.score or 0.0))
        return scored[: self.top_n]


class OfflineLLM(CustomLLM):
    """Answers with the context sentence sharing most words with the question."""

    model: str = "gpt-4o-mini"

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(model_name=self.model)

    def _answer(self, prompt: str) -> tuple[str, dict[str, Any]]:
        context, _, rest = prompt.partition("Query:")
        question = rest.split("Answer:", 1)[0]
        lines = [line for line in context.splitlines()
                 if line.strip() and not line.startswith(("---", "source:"))]
        sentences = [s for line in lines for s in re.split(r"(?<=\.)\s+", line.strip())]
        answer = max(sentences, key=lambda s: len(_words(s) & _words(question)),
                     default="The context does not say.")
        prompt_tokens, output_tokens = len(prompt.split()) * 4 // 3, len(answer.split()) * 4 // 3
        raw = {"id": "offline-1", "model": "gpt-4o-mini-2024-07-18",
               "choices": [{"finish_reason": "stop"}],
               "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": output_tokens,
                         "total_tokens": prompt_tokens + output_tokens}}
        return answer, raw

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        answer, raw = self._answer(prompt)
        return CompletionResponse(text=answer, raw=raw)

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False,
                        **kwargs: Any) -> CompletionResponseGen:
        answer, raw = self._answer(prompt)
        yield CompletionResponse(text=answer, delta=answer, raw=raw)


def build_query_engine() -> Any:
    """Vector index over :data:`KNOWLEDGE`, reranker, compact-and-refine synthesis."""
    documents = [Document(text=text, doc_id=key, metadata={"source": key})
                 for key, text in KNOWLEDGE.items()]
    index = VectorStoreIndex.from_documents(documents, embed_model=WordEmbedding())
    return index.as_query_engine(llm=OfflineLLM(), similarity_top_k=4,
                                 node_postprocessors=[WordOverlapReranker(top_n=2)])


def show(trail: Trail, trace_id: str) -> None:
    """Print the lineage of one answer, read back from the store."""
    lineage = trail.lineage(trace_id)
    print(f"trace     {lineage.trace_id}")
    print(f"question  {lineage.question}")
    for run in lineage.runs:
        print(f"  {run.kind.value:<10} {run.name}")
    for stage in ("retrieved", "reranked", "in_prompt"):
        print(f"{stage}:")
        for use in lineage.documents_at(stage):
            score = f"{use.score:.3f}" if use.score is not None else "-"
            moved = f"  (was #{use.input_rank + 1})" if use.input_rank is not None else ""
            # Documents are stored once per text: the first writer's metadata is kept.
            source = use.metadata.get("ref_doc_id") or use.metadata.get("source", "")
            print(f"  #{use.rank + 1} {source:<18} node {use.document_id[:8]}  "
                  f"score {score}{moved}")
    for call in lineage.llm_calls:
        meta = call.metadata
        usage = meta.token_usage
        template = (meta.prompt_template or "").splitlines()[0] if meta.prompt_template else None
        print(f"prompt    {template!r}...")
        print(f"model     {meta.provider_model}")
        if usage is not None:
            print(f"tokens    {usage.input_tokens} in + {usage.output_tokens} out")
    print(f"cost      {lineage.total_cost} USD" if lineage.total_cost is not None
          else "cost      unknown")
    print(f"answer    {lineage.answer}")


def main(db_url: str | None = None) -> str:
    """Run one query with ragtrail's handler, print its lineage, return the trace id."""
    previous = Settings._callback_manager
    with Trail(db_url, app_name="llamaindex-rag-demo") as trail:
        handler = RagtrailHandler(trail)
        Settings.callback_manager = CallbackManager([handler])
        try:
            build_query_engine().query(QUESTION)
        finally:
            Settings.callback_manager = previous  # type: ignore[assignment]
        trail.flush()
        trace_id = handler.last_trace_id
        if trace_id is None:
            raise RuntimeError("the query was not recorded")
        show(trail, trace_id)
        return trace_id


if __name__ == "__main__":
    arg = sys.argv[1] if len(sys.argv) > 1 else None
    main(arg if arg is None or "://" in arg else f"sqlite:///{arg}")
