"""Documents and their links to the runs that retrieved, reranked or prompted with them."""

from __future__ import annotations

import hashlib
from typing import Any

from pydantic import Field

from ._base import Model
from .conventions import DocStage

__all__ = ["Document", "DocumentLink", "content_hash"]


#: Recent hashes of short texts: a document is hashed at every step it passes through
#: (retrieved, reranked, in the prompt). At most this many texts of at most this length.
_HASH_CACHE_ENTRIES = 2048
_HASH_CACHE_TEXT_CHARS = 8192
_hashes: dict[str, str] = {}


def content_hash(text: str) -> str:
    """sha256 hex digest of a document's text: its identity across runs and stores."""
    digest = _hashes.get(text)
    if digest is None:
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
        if len(text) <= _HASH_CACHE_TEXT_CHARS:
            if len(_hashes) >= _HASH_CACHE_ENTRIES:
                _hashes.clear()  # crude but bounded; a miss only costs the hash again
            _hashes[text] = digest
    return digest


class Document(Model):
    """A distinct document (chunk, node). One stored row per content hash."""

    document_id: str = Field(description="Source id when the framework has one, else the hash.")
    content_hash: str = Field(description="sha256 of the text.")
    content: str | None = Field(None, description="The text; None when contents are hidden.")
    metadata: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def from_text(
        cls, text: str, *, document_id: str | None = None, metadata: dict[str, Any] | None = None
    ) -> Document:
        """Build a document, hashing its text; the id defaults to the hash."""
        digest = content_hash(text)
        return cls(
            document_id=document_id or digest,
            content_hash=digest,
            content=text,
            metadata=metadata or {},
        )


class DocumentLink(Model):
    """A document at a stage of one run: retrieved, reranked or in the prompt."""

    run_id: str
    trace_id: str
    content_hash: str
    document_id: str
    stage: DocStage
    rank: int = Field(ge=0, description="Position at this stage, starting at 0.")
    score: float | None = None
    input_rank: int | None = Field(
        None, ge=0, description="For reranked documents: position in the reranker's input."
    )
