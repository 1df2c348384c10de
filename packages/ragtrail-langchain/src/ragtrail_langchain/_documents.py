"""Documents: LangChain ``Document`` lists to ragtrail inputs, and reranking detection."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.documents import Document

from ragtrail.capture import DocumentInput, guarded
from ragtrail.capture.rerank import rerank_plan
from ragtrail.schemas import content_hash

from ._names import SCORE_KEYS

__all__ = ["DocList", "Reranking", "doc_list", "docs_in", "reranking", "tool_docs"]


@dataclass(frozen=True)
class DocList:
    """A list of LangChain documents with their content hashes, computed once."""

    documents: tuple[Document, ...]
    hashes: tuple[str, ...]

    def inputs(self, input_ranks: Sequence[int | None] | None = None,
               source_ids: Sequence[str | None] | None = None) -> list[DocumentInput]:
        """ragtrail document inputs, in order, with scores from the metadata."""
        ranks = list(input_ranks) if input_ranks is not None else [None] * len(self.documents)
        sources = list(source_ids) if source_ids is not None else [None] * len(self.documents)
        return [
            DocumentInput(
                text=doc.page_content,
                document_id=doc.id or None,
                metadata=doc.metadata or None,
                score=score_of(doc),
                input_rank=rank,
                content_hash=digest,
                source_id=source,
            )
            for doc, rank, digest, source in zip(self.documents, ranks, self.hashes, sources,
                                                 strict=True)
        ]


@guarded(default=None)
def score_of(document: Document) -> float | None:
    """The score a retriever or compressor put in the metadata, if any."""
    metadata = document.metadata or {}
    for key in SCORE_KEYS:
        value = metadata.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


def doc_list(value: Any) -> DocList | None:
    """A :class:`DocList` when ``value`` is a non-empty sequence of documents only."""
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence) or not value:
        return None
    if not all(isinstance(item, Document) for item in value):
        return None
    docs = tuple(value)
    return DocList(docs, tuple(content_hash(d.page_content) for d in docs))


def docs_in(value: Any) -> DocList | None:
    """Documents a step received: a list of them, or the first such list in a dict."""
    found = doc_list(value)
    if found is not None or not isinstance(value, Mapping):
        return found
    for item in value.values():
        found = doc_list(item)
        if found is not None:
            return found
    return None


def tool_docs(output: Any) -> DocList | None:
    """Documents a tool returned: its output itself (a ``Document`` or a list of them),
    or the artifact of the ``ToolMessage`` it produced (``@tool(response_format=
    "content_and_artifact")`` called with a tool call, as ``ToolNode`` and agents do),
    or the first list of documents in a dict artifact."""
    if isinstance(output, Document):
        return doc_list([output])
    found = doc_list(output)
    if found is not None:
        return found
    artifact = getattr(output, "artifact", None) if hasattr(output, "tool_call_id") else None
    if artifact is None:
        return None
    if isinstance(artifact, Document):
        return doc_list([artifact])
    return docs_in(artifact)


@dataclass(frozen=True)
class Reranking:
    """Output documents of a reranking step and where each stood in its input.

    A piece cut from an input document (a splitter in a compressor pipeline) stands at
    its source's rank, and names its source (the source's id, else its content hash).
    """

    output: DocList
    input_ranks: tuple[int, ...]
    source_ids: tuple[str | None, ...] | None = None

    def inputs(self) -> list[DocumentInput]:
        """The output documents as ragtrail inputs, with input ranks and sources."""
        return self.output.inputs(self.input_ranks, self.source_ids)


@guarded(default=None)
def reranking(source: DocList, output: DocList, *, explicit: bool = False) -> Reranking | None:
    """A :class:`Reranking` when ``output`` is drawn from ``source`` and reorders it.

    "Reorders" means: a different order, fewer documents, or scores the input did not
    carry. An unchanged list is a pass-through, not a reranker, unless ``explicit``.
    """
    plan = rerank_plan(source.hashes, output.hashes, piece_of=lambda position: _containing(
        source, output.documents[position].page_content))
    if plan is None:
        return None
    ranks = plan.input_ranks
    changed = not plan.same_as_input or any(
        score_of(o) != score_of(source.documents[r])
        for o, r in zip(output.documents, ranks, strict=True))
    if not (changed or explicit):
        return None
    sources = None if plan.pieces is None else tuple(
        (source.documents[at].id or source.hashes[at]) if piece else None
        for at, piece in zip(ranks, plan.pieces, strict=True))
    return Reranking(output, ranks, sources)


def _containing(source: DocList, text: str) -> int | None:
    """Rank of the first input document whose text contains ``text`` (a split piece)."""
    piece = text.strip()
    if not piece:
        return None
    return next((rank for rank, doc in enumerate(source.documents)
                 if piece in doc.page_content), None)
