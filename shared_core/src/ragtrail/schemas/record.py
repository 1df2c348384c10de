"""The unit the Recorder hands to the writer: one finished run with what belongs to it."""

from __future__ import annotations

from pydantic import Field

from .conventions import CURRENT_SCHEMA_VERSION
from ._base import Model
from .llm import LLMMetadata
from .rag import Document, DocumentLink
from .run import Run

__all__ = ["CapturedRun"]


class CapturedRun(Model):
    """A finished run, its LLM call (if any) and its document links.

    Writing the same CapturedRun twice stores it once: runs are keyed by id, LLM calls
    by run id, documents by content hash and links by (run, document, stage).
    """

    schema_version: str = CURRENT_SCHEMA_VERSION
    run: Run
    llm: LLMMetadata | None = None
    documents: list[Document] = Field(default_factory=list)
    links: list[DocumentLink] = Field(default_factory=list)

    @property
    def id(self) -> str:
        """The run id: the record's idempotency key."""
        return self.run.id
