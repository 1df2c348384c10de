"""Result models of the read side (pydantic)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..schemas import DocStage, LLMCallRecord, Run, RunKind, RunStatus
from ._evaluations import Evaluation

__all__ = ["DocumentUsage", "DocumentUse", "Lineage", "RunNode", "TraceSummary", "UsageRow"]


class _Result(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RunNode(_Result):
    """A run and its children, in start order."""

    run: Run
    children: list[RunNode] = Field(default_factory=list)

    def walk(self) -> Iterator[RunNode]:
        """This node, then every descendant, depth first in start order."""
        stack = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children))


class DocumentUse(_Result):
    """A document at one stage of one run, with the document's stored row."""

    run_id: str
    stage: DocStage
    rank: int
    score: float | None = None
    input_rank: int | None = None
    document_id: str
    content_hash: str
    content: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class Lineage(_Result):
    """Everything stored about one trace."""

    trace_id: str
    runs: list[Run] = Field(description="Every run, in start order (ties: path order).")
    tree: RunNode | None = Field(
        description="The root run and its descendants; None while no run of the trace is stored."
    )
    roots: list[RunNode] = Field(
        default_factory=list,
        description="Runs whose parent is not stored (normally just the root), as trees.",
    )
    llm_calls: list[LLMCallRecord] = Field(default_factory=list)
    documents: list[DocumentUse] = Field(default_factory=list)
    question: str | None = None
    answer: str | None = None
    total_tokens: int = 0
    total_cost: Decimal | None = Field(None, description="Priced calls only; None if none.")
    unpriced_calls: int = 0
    evaluations: list[Evaluation] = Field(
        default_factory=list, description="Evaluations of this trace, newest first.")

    @property
    def root(self) -> Run | None:
        """The root run, when stored."""
        return self.tree.run if self.tree is not None else None

    def run(self, run_id: str) -> Run:
        """The run with this id; KeyError when it is not part of the trace."""
        for run in self.runs:
            if run.id == run_id:
                return run
        raise KeyError(run_id)

    def documents_at(self, stage: DocStage | str) -> list[DocumentUse]:
        """The document uses at ``stage``, in run order then rank."""
        wanted = DocStage(stage)
        return [use for use in self.documents if use.stage is wanted]


class TraceSummary(_Result):
    """One trace as listed by :func:`ragtrail.query.traces`."""

    trace_id: str
    name: str
    kind: RunKind
    status: RunStatus
    started_at: datetime
    ended_at: datetime | None = None
    duration_ms: float | None = None
    app_name: str | None = None
    app_version: str | None = None
    user_hash: str | None = None
    session_id: str | None = None
    llm_calls: int = 0
    total_tokens: int = 0
    total_cost: Decimal | None = Field(None, description="Priced calls only; None if none.")
    unpriced_calls: int = 0
    models: list[str] = Field(default_factory=list)
    question: str | None = Field(None, description="The root's input as text, shortened.")
    answer: str | None = Field(None, description="The root's output as text, shortened.")


class DocumentUsage(_Result):
    """A trace that used a document, and how far the document got in it."""

    trace_id: str
    run_ids: list[str] = Field(description="Runs that retrieved, reranked or prompted with it.")
    document_id: str
    content_hash: str
    stage: DocStage = Field(description="Highest stage reached: retrieved < reranked < in_prompt.")
    rank: int = Field(description="Best rank at that stage.")
    score: float | None = Field(None, description="Score at that rank and stage.")
    question: str | None = None
    answer: str | None = None
    started_at: datetime | None = Field(None, description="When the trace started.")


class UsageRow(_Result):
    """Tokens and cost of the LLM calls in one group."""

    group: dict[str, Any] = Field(description="Group key -> value, in group_by order.")
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cache_read_tokens: int = 0
    cache_creation_tokens: int = 0
    reasoning_tokens: int = 0
    total_cost: Decimal | None = Field(None, description="Priced calls only; None if none.")
    priced_calls: int = 0
    unpriced_calls: int = Field(0, description="Calls with no known price: not in total_cost.")
    template_name: str | None = Field(
        None, description="Grouped by template: the name the framework gave the template, "
                          "else its first line (``group['template']`` is its hash).")
