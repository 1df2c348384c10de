"""The unit the Recorder hands to the writer: one finished run with what belongs to it."""

from __future__ import annotations

from pydantic import Field, PrivateAttr

from ._base import Model
from .conventions import CURRENT_SCHEMA_VERSION
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
    # Approximate serialized size in bytes, set by the Recorder (which already walks
    # the payloads to bound them) so the writer can bound its queue in bytes without
    # serializing on the application's thread. 0 = unknown.
    _approx_bytes: int = PrivateAttr(default=0)

    @property
    def approx_bytes(self) -> int:
        """Approximate serialized size in bytes (0 when unknown)."""
        return self._approx_bytes

    @property
    def id(self) -> str:
        """The run id: the record's idempotency key."""
        return self.run.id
