"""Mutable bookkeeping for runs and traces that have not ended yet."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from ..schemas import AppContext, DocStage, Framework, RunKind


class PendingDocument(NamedTuple):
    """A document of a run, before the run ends (its content hash is the key it is
    kept under); the stored :class:`~ragtrail.schemas.Document` is built with the record."""

    document_id: str
    content: str | None
    metadata: dict[str, Any]


@dataclass(slots=True)
class PendingLink:
    """A document at a stage, before the run ends."""

    content_hash: str
    document_id: str
    stage: DocStage
    rank: int
    score: float | None
    input_rank: int | None


@dataclass(slots=True)
class OpenRun:
    """A run that has started and not ended."""

    id: str
    trace_id: str
    parent_id: str | None
    path: str
    kind: RunKind
    name: str
    framework: Framework
    started_at: datetime
    start_ns: int
    app: AppContext
    inputs: Any = None
    outputs: Any = None
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    truncated: bool = False
    redacted: bool = False
    retries: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    llm: dict[str, Any] = field(default_factory=dict)
    documents: dict[str, PendingDocument] = field(default_factory=dict)  # by content hash
    links: list[PendingLink] = field(default_factory=list)
    first_token_ns: int | None = None
    size: int = 0
    #: The adapter that started the run and its own framework state for it (the
    #: Recorder is the only run table: adapters keep no map of their own).
    owner: object = None
    state: Any = None
    #: Ids of the open runs started under this one (None until the first).
    children: set[str] | None = None
    #: Called with the trace id when the run ends (not when it is abandoned).
    on_end: Callable[[str], None] | None = None


@dataclass
class TraceState:
    """What a trace has seen so far, shared by its open runs."""

    trace_id: str
    open_runs: int = 0
    # content_hash -> (probe texts to find the document in a prompt, document_id)
    documents: dict[str, tuple[tuple[str, ...], str]] = field(default_factory=dict)
    #: (text, variables, hash, name) of the last template a prompt step rendered.
    template: tuple[str, dict[str, Any] | None, str, str | None] | None = None
