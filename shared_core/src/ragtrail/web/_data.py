"""What the web view shows, as JSON-ready data, read through :mod:`ragtrail.query` only.

The JSON API returns these structures as they are; the pages render the same ones, so
what a person sees and what a script reads never differ.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic_core import to_jsonable_python
from sqlalchemy.engine import Engine

from .. import query, report
from ..errors import ConfigError
from ..query import DocumentUsage, Evaluation, Lineage, RunNode, UsageRow
from ..query._browse import (
    SessionSummary,
    StoredDocument,
    TraceListItem,
    TracePage,
    document,
    evaluations_by_trace,
    session_turns,
    sessions,
    trace_page,
)
from ..redaction import Redactor
from ..schemas import DocStage

__all__ = ["UI_GROUP_ALIASES", "Source", "jsonable", "trace_detail"]

#: ``by=`` values of the usage endpoint and page -> query group keys.
UI_GROUP_ALIASES = {"model": "model", "provider": "provider", "app": "app_name",
                    "app_name": "app_name", "user": "user", "session": "session",
                    "day": "day", "template": "template"}
#: Query parameters of ``/api/v1/traces`` and the traces page.
TRACE_FILTERS = ("since", "until", "app", "user", "session", "status", "model", "kind", "q")
#: Query parameters of ``/api/v1/evaluations`` and the evaluations page.
EVALUATION_FILTERS = ("trace", "name", "vendor", "source", "judge_provider", "judge_model",
                      "since")


def jsonable(value: Any) -> Any:
    """``value`` (models, Decimals, datetimes, lists of them) as plain JSON data."""
    return to_jsonable_python(value)


def _when(value: str | None, name: str) -> datetime | None:
    from ..cli._common import parse_when  # ISO date/time or a duration ago (7d, 12h)

    return parse_when(value, name) if value else None


def _int(value: str | None, name: str, default: int, lowest: int = 1, highest: int = 500) -> int:
    if value in (None, ""):
        return default
    try:
        number = int(str(value))
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {value!r}") from None
    if not lowest <= number <= highest:
        raise ConfigError(f"{name} must be from {lowest} to {highest}, got {number}")
    return number


@dataclass
class Source:
    """A database the web view reads: its engine, and the redactor that hashes user ids."""

    engine: Engine
    redactor: Redactor
    url: str

    def trace_page(self, params: Mapping[str, str]) -> TracePage:
        """A page of traces for the query parameters of ``/api/v1/traces``."""
        def get(name: str) -> str | None:
            value = params.get(name)
            return value if value not in (None, "") else None

        user = get("user")
        return trace_page(
            self.engine,
            limit=_int(params.get("limit"), "limit", 50),
            cursor=get("cursor"),
            since=_when(get("since"), "since"),
            until=_when(get("until"), "until"),
            app_name=get("app"),
            user_hash=self.redactor.hash_user(user) if user is not None else None,
            session_id=get("session"),
            status=get("status"),
            model=get("model"),
            kind=get("kind"),
            text=get("q"),
        )

    def lineage(self, trace_id: str) -> Lineage:
        """The lineage of a trace (NotFoundError when unknown)."""
        return query.lineage(self.engine, trace_id)

    def detail(self, trace_id: str) -> dict[str, Any]:
        """``GET /api/v1/traces/{trace_id}/detail``."""
        return trace_detail(self.lineage(trace_id))

    def evaluations(self, params: Mapping[str, str]) -> list[Evaluation]:
        """Evaluations for the query parameters of ``/api/v1/evaluations``, newest first."""
        def get(name: str) -> str | None:
            value = params.get(name)
            return value if value not in (None, "") else None

        return query.evaluations(
            self.engine, get("trace"), name=get("name"), vendor_name=get("vendor"),
            source=get("source"), judge_provider=get("judge_provider"),
            judge_model=get("judge_model"), since=_when(get("since"), "since"),
            limit=_int(params.get("limit"), "limit", 100))

    def evaluations_by_trace(self, trace_ids: list[str]) -> dict[str, list[Evaluation]]:
        """Evaluations of each trace of a page (badges)."""
        return evaluations_by_trace(self.engine, trace_ids)

    def answers(self, doc: str, limit: int | None = None) -> list[DocumentUsage]:
        """Traces that used a document, newest first."""
        return query.answers_using(self.engine, doc, limit=limit)

    def document(self, doc: str) -> StoredDocument | None:
        """A stored document by content hash or id."""
        return document(self.engine, doc)

    def usage(self, by: Sequence[str], since: str | None, until: str | None) -> list[UsageRow]:
        """Usage grouped by the ``by`` values (aliases of :data:`UI_GROUP_ALIASES`)."""
        keys = group_keys(by)
        return query.usage(self.engine, group_by=keys, since=_when(since, "since"),
                           until=_when(until, "until"))

    def usage_views(self, since: str | None, until: str | None
                    ) -> tuple[dict[str, list[UsageRow]], list[UsageRow]]:
        """The usage page's tables (by model, provider, app, template) and its chart rows
        (by day and model), from two grouped queries instead of five: one over the LLM
        calls alone, folded here, and the one that needs their runs (app)."""
        fine = self.usage(["model", "provider", "template", "day"], since, until)
        tables = {key: fold(fine, key) for key in ("model", "provider")}
        tables["app"] = self.usage(["app"], since, until)
        tables["template"] = fold(fine, "template")
        return tables, fold(fine, "day", "model")

    def diff(self, a: str, b: str) -> tuple[Lineage, Lineage, list[dict[str, Any]]]:
        """Both traces and the ``ragtrail diff`` rows."""
        first, second = self.lineage(a), self.lineage(b)
        return first, second, report.diff_rows(first, second)

    def sessions(self, limit: int = 50) -> list[SessionSummary]:
        """Sessions, most recently active first."""
        return sessions(self.engine, limit=limit)

    def session_turns(self, session_id: str) -> list[TraceListItem]:
        """The traces of a session, oldest first."""
        return session_turns(self.engine, session_id)


def group_keys(by: Sequence[str]) -> list[str]:
    """Query group keys for ``by`` values; ConfigError naming the valid ones."""
    keys = []
    for value in by:
        for part in str(value).split(","):
            part = part.strip()
            if not part:
                continue
            if part not in UI_GROUP_ALIASES:
                raise ConfigError(f"cannot group usage by {part!r}; use any of "
                                  f"{', '.join(sorted(UI_GROUP_ALIASES))}")
            keys.append(UI_GROUP_ALIASES[part])
    return list(dict.fromkeys(keys))


def fold(rows: Sequence[UsageRow], *keys: str) -> list[UsageRow]:
    """``rows`` of a finer grouping summed into groups by ``keys`` (a subset of theirs),
    ordered like :func:`ragtrail.query.usage` orders them."""
    folded: dict[tuple[Any, ...], UsageRow] = {}
    for row in rows:
        group = {key: row.group[key] for key in keys}
        target = folded.get(tuple(group.values()))
        if target is None:
            # A template's name belongs to groups by template only.
            name = row.template_name if "template" in keys else None
            folded[tuple(group.values())] = row.model_copy(
                update={"group": group, "template_name": name})
            continue
        for field in ("calls", "priced_calls", "unpriced_calls", "input_tokens",
                      "output_tokens", "total_tokens", "cache_read_tokens",
                      "cache_creation_tokens", "reasoning_tokens"):
            setattr(target, field, getattr(target, field) + getattr(row, field))
        if row.total_cost is not None:
            target.total_cost = row.total_cost if target.total_cost is None else \
                target.total_cost + row.total_cost
    out = list(folded.values())
    out.sort(key=lambda row: [(value is None, value or "") for value in row.group.values()])
    return out


def _depths(roots: list[RunNode]) -> dict[str, int]:
    depths: dict[str, int] = {}
    stack = [(node, 0) for node in reversed(roots)]
    while stack:
        node, depth = stack.pop()
        depths[node.run.id] = depth
        stack.extend((child, depth + 1) for child in reversed(node.children))
    return depths


def _tree_order(found: Lineage) -> list[str]:
    order: list[str] = []
    for root in found.roots:
        order.extend(node.run.id for node in root.walk())
    return order


def evaluation_json(evaluation: Evaluation) -> dict[str, Any]:
    """An evaluation as the trace-detail API gives it (seed 002): every field, plus the
    vendor name, the judge's full LLM metadata and quick access to its tokens and cost."""
    data: dict[str, Any] = evaluation.model_dump(mode="json", exclude={"judge"})
    judge = evaluation.judge
    usage = judge.token_usage if judge else None
    cost = judge.cost_metrics if judge else None
    performance = judge.performance_metrics if judge else None
    data.update(
        evaluation_name=evaluation.name,
        evaluation_source=evaluation.source.value,
        llm_metadata=judge.model_dump(mode="json", exclude_none=True) if judge else None,
        input_tokens=usage.input_tokens if usage else None,
        output_tokens=usage.output_tokens if usage else None,
        total_tokens=usage.total_tokens if usage else None,
        evaluation_cost=jsonable(cost.total_cost) if cost else None,
        execution_time_ms=performance.total_duration_ms if performance else None,
    )
    return data


def trace_detail(found: Lineage) -> dict[str, Any]:
    """The trace-detail structure (seed 002): summary, run tree, LLM calls, documents by
    stage and evaluations."""
    runs = {run.id: run for run in found.runs}
    order = _tree_order(found) or [run.id for run in found.runs]
    depths = _depths(found.roots)
    start = min((run.started_at for run in found.runs), default=None)
    ends = [run.ended_at or run.started_at for run in found.runs]
    end = max(ends, default=None)
    span_ms = (end - start).total_seconds() * 1000 if start and end else 0.0
    root = found.root
    summary = {
        "trace_id": found.trace_id,
        "name": root.name if root else None,
        "kind": root.kind.value if root else None,
        "status": root.status.value if root else None,
        "started_at": start,
        "ended_at": end,
        "duration_ms": root.duration_ms if root else None,
        "span_ms": span_ms,
        "app_name": root.app_name if root else None,
        "app_version": root.app_version if root else None,
        "user_hash": root.user_hash if root else None,
        "session_id": root.session_id if root else None,
        "question": found.question,
        "answer": found.answer,
        "llm_calls": len(found.llm_calls),
        "total_tokens": found.total_tokens,
        "total_cost": found.total_cost,
        "unpriced_calls": found.unpriced_calls,
    }
    run_rows = []
    for run_id in order:
        run = runs[run_id]
        offset = (run.started_at - start).total_seconds() * 1000 if start else 0.0
        data = run.model_dump(mode="json", exclude={"schema_version", "path", "environment",
                                                    "trace_id"})
        data.update(depth=depths.get(run_id, 0), offset_ms=offset)
        run_rows.append(data)
    calls = []
    for call in found.llm_calls:
        meta = call.metadata
        usage = meta.token_usage
        cost = meta.cost_metrics
        calls.append({
            "run_id": call.run_id,
            "provider": meta.provider,
            "provider_model": meta.provider_model,
            "input_tokens": usage.input_tokens if usage else None,
            "output_tokens": usage.output_tokens if usage else None,
            "total_tokens": usage.total_tokens if usage else None,
            "cost": cost.total_cost if cost else None,
            "llm_metadata": meta.model_dump(mode="json", exclude_none=True),
        })
    documents: dict[str, list[dict[str, Any]]] = {stage.value: [] for stage in DocStage}
    for use in found.documents:
        item = use.model_dump(mode="json")
        if use.stage is DocStage.IN_PROMPT:
            item["llm_run_id"] = use.run_id
        documents[use.stage.value].append(item)
    detail: dict[str, Any] = {
        "trace_id": found.trace_id,
        "trace": summary,
        "runs": run_rows,
        "llm_calls": calls,
        "documents": documents,
        "evaluations": [evaluation_json(e) for e in found.evaluations],
    }
    return jsonable(detail)  # type: ignore[no-any-return]


def stage_table(found: Lineage) -> list[dict[str, Any]]:
    """One row per document of a trace: its rank and score at each stage, and the
    citation number it has in the prompt (1-based, in prompt order; None if it never got
    there)."""
    rows: dict[str, dict[str, Any]] = {}
    for use in found.documents:
        row = rows.setdefault(use.content_hash, {
            "content_hash": use.content_hash, "document_id": use.document_id,
            "content": use.content, "retrieved": None, "reranked": None, "in_prompt": None,
        })
        if row[use.stage.value] is None:
            row[use.stage.value] = {"rank": use.rank, "score": use.score,
                                    "input_rank": use.input_rank, "run_id": use.run_id}
    ordered = sorted(rows.values(), key=lambda r: (
        r["in_prompt"]["rank"] if r["in_prompt"] else 10**9,
        r["reranked"]["rank"] if r["reranked"] else 10**9,
        r["retrieved"]["rank"] if r["retrieved"] else 10**9,
    ))
    number = 0
    for row in ordered:
        if row["in_prompt"] is not None:
            number += 1
            row["citation"] = number
        else:
            row["citation"] = None
        reranked, retrieved = row["reranked"], row["retrieved"]
        before = (reranked or {}).get("input_rank")
        if before is None and retrieved is not None:
            before = retrieved["rank"]
        row["moved"] = (before - reranked["rank"]) if reranked and before is not None else None
    return ordered
