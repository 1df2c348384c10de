"""The unit the Recorder hands to the writer: one finished run with what belongs to it."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from pydantic import Field, PrivateAttr

from ._base import Model
from .conventions import CURRENT_SCHEMA_VERSION
from .llm import LLMMetadata
from .rag import Document, DocumentLink
from .run import Run

__all__ = ["CapturedRun", "SerializedRecord"]


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


class SerializedRecord:
    """A :class:`CapturedRun` as plain JSON data, read back from a disk spool written by
    an earlier version (today's spool keeps :class:`~ragtrail.schemas.flat.FlatRecord`).

    The SQL store writes it as it is; it is validated into a CapturedRun only for a
    store that needs one (:meth:`to_record`).
    """

    __slots__ = ("data",)

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    @classmethod
    def parse(cls, text: str | bytes, loads: Callable[[str | bytes], Any] = json.loads
              ) -> SerializedRecord | CapturedRun:
        """Read one record's JSON: as it is when it is at the current schema version,
        else validated into a CapturedRun. Raises ValueError when it is not a record.

        ``loads`` parses the text (any parser raising ValueError on bad JSON; the
        writer's spool passes pydantic-core's, about twice as fast as ``json.loads``).
        """
        try:
            data = loads(text)
        except ValueError:
            data = None
        if (isinstance(data, dict) and data.get("schema_version") == CURRENT_SCHEMA_VERSION
                and isinstance(data.get("run"), dict)
                and isinstance(data["run"].get("id"), str)):
            return cls(data)
        return CapturedRun.model_validate_json(text)  # ValidationError is a ValueError

    @property
    def id(self) -> str:
        """The run id: the record's idempotency key."""
        return str(self.data["run"]["id"])

    def to_record(self) -> CapturedRun:
        """The validated CapturedRun (raises pydantic's ValidationError)."""
        return CapturedRun.model_validate(self.data)

