"""A run: one step of an LLM application (chain, retriever, LLM call, ...)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ._base import Model, UtcDateTime, UtcModel
from .conventions import CURRENT_SCHEMA_VERSION, Framework, RunKind, RunStatus

__all__ = ["Run", "RunError"]


class RunError(Model):
    """Why a run failed."""

    type: str = Field(description="Exception class name, e.g. 'ValueError'.")
    message: str = Field(description="str(exception), redacted and size-bounded.")
    stack: str | None = Field(None, description="Short summary of the innermost frames.")
    http_status: int | None = Field(None, description="HTTP status when the error carried one.")
    retry_after_s: float | None = Field(None, description="Server's retry-after, in seconds.")


class Run(UtcModel):
    """One step of a trace, with its lineage, timing, status and payloads."""

    schema_version: str = CURRENT_SCHEMA_VERSION
    id: str = Field(description="Run id; framework ids are kept as they are.")
    trace_id: str = Field(description="Id of the root run of this trace.")
    parent_id: str | None = Field(None, description="Parent run id; None for a root.")
    path: str = Field(
        description="Sortable lineage path (start time + id per level, dot-separated): "
        "a subtree is one range query on it within its trace."
    )
    kind: RunKind = RunKind.CHAIN
    name: str = ""
    framework: Framework = Framework.MANUAL
    started_at: UtcDateTime
    ended_at: UtcDateTime | None = None
    duration_ms: float | None = Field(None, ge=0, description="From a monotonic clock.")
    status: RunStatus = RunStatus.OK
    error: RunError | None = None
    inputs: Any = None
    outputs: Any = None
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    truncated: bool = Field(False, description="Some content was cut to the size limits.")
    redacted: bool = Field(False, description="Some content was redacted or hidden.")
    retries: int = Field(0, ge=0, description="Retries the framework reported for this run.")
    events: list[dict[str, Any]] = Field(
        default_factory=list, description="Custom events the application emitted."
    )
    app_name: str | None = None
    app_version: str | None = None
    user_hash: str | None = Field(None, description="Keyed hash (HMAC) of the user id.")
    session_id: str | None = None
    request_type: str | None = None
    environment: dict[str, Any] | None = Field(
        None, description="Host, OS and versions; kept on the root run of a trace."
    )
    tenant: str | None = Field(None, description="Tenant the run belongs to (see Governance).")

    @property
    def is_root(self) -> bool:
        """True for the root run of a trace."""
        return self.parent_id is None
