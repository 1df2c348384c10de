"""Storing evaluations: validation, target resolution, the judge's summary, upsert."""

from __future__ import annotations

import hashlib
import math
import uuid
from collections.abc import Mapping
from datetime import datetime, timezone
from numbers import Real
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from ..errors import ConfigError
from ..query._evaluations import coerce_source, judge_summary
from ..schemas import bounded_key
from ..store import _tables

__all__ = ["MAX_LABEL_CHARS", "MAX_NAME_CHARS", "evaluation_key", "prepare", "write"]

#: Longest evaluation name, label and vendor name accepted (a label is a class such as
#: "relevant" or "hallucinated", not a text: that is what ``explanation`` is for).
MAX_NAME_CHARS = 200
MAX_LABEL_CHARS = 200
MAX_VENDOR_CHARS = 100  # the guide's VARCHAR(100)

_ev = _tables.evaluations
_runs = _tables.runs
_vendors = _tables.vendors


def evaluation_key(trace_id: str, name: str, vendor_name: str, document_id: str | None) -> str:
    """A stable evaluation id: evaluating the same trace again with the same evaluator
    and name replaces the earlier result."""
    raw = "\x1f".join((trace_id, name, vendor_name, document_id or ""))
    return "ev-" + hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _short_text(value: Any, argument: str, limit: int, *, required: bool) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{argument} must be a non-empty string, got {value!r}")
    if len(value) > limit:
        raise ConfigError(f"{argument} is {len(value)} characters long; the limit is {limit}")
    return value


def prepare(
    target_id: Any,
    name: Any,
    *,
    score: Any,
    label: Any,
    passed: Any,
    source: Any,
    vendor_name: Any,
    vendor_version: Any,
    document_id: Any,
    judge_trace_id: Any,
    evaluation_id: Any,
    error: str | None = None,
) -> dict[str, Any]:
    """The row's plain fields, validated; ConfigError naming the bad argument."""
    if not isinstance(target_id, (str, uuid.UUID)) or not str(target_id).strip():
        raise ConfigError(f"target_id must be a trace or run id, got {target_id!r}")
    name = _short_text(name, "name", MAX_NAME_CHARS, required=True)
    if score is not None:
        if isinstance(score, bool) or not isinstance(score, Real):
            raise ConfigError(f"score must be a number, got {score!r}")
        score = float(score)
        if not math.isfinite(score):
            raise ConfigError(f"score must be a finite number, got {score!r}")
    label = _short_text(label, "label", MAX_LABEL_CHARS, required=False)
    if passed is not None and not isinstance(passed, bool):
        raise ConfigError(f"passed must be True, False or None, got {passed!r}")
    if error is None and score is None and label is None and passed is None:
        raise ConfigError("an evaluation needs at least one of score, label or passed")
    vendor = _short_text(vendor_name, "vendor_name", MAX_VENDOR_CHARS, required=True)
    for argument, value in (("vendor_version", vendor_version), ("document_id", document_id),
                            ("judge_trace_id", judge_trace_id),
                            ("evaluation_id", evaluation_id)):
        if value is not None and (not isinstance(value, (str, uuid.UUID)) or not str(value)):
            raise ConfigError(f"{argument} must be a non-empty string or None, got {value!r}")
    return {
        "target": bounded_key(str(target_id)),
        "name": name, "score": score, "label": label, "passed": passed,
        "source": coerce_source(source).value, "vendor_name": vendor,
        "vendor_version": str(vendor_version) if vendor_version is not None else None,
        "document_id": bounded_key(str(document_id)) if document_id is not None else None,
        "judge_trace_id": bounded_key(str(judge_trace_id)) if judge_trace_id else None,
        "id": bounded_key(str(evaluation_id)) if evaluation_id is not None else None,
        "error": error,
    }


def _resolve(conn: Connection, target: str) -> tuple[str | None, str]:
    """(trace id, run id) of a stored target; (None, target) when nothing is stored yet."""
    trace_id = conn.execute(
        sa.select(_runs.c.trace_id).where(_runs.c.id == target)).scalar_one_or_none()
    if trace_id is not None:
        return str(trace_id), target
    if conn.execute(sa.select(_runs.c.id).where(_runs.c.trace_id == target).limit(1)).first():
        return target, target
    return None, target


def _ensure_vendor(conn: Connection, name: str) -> None:
    if conn.execute(sa.select(_vendors.c.name).where(_vendors.c.name == name)).first():
        return
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    conn.execute(insert(_vendors).values(name=name, builtin=False)
                 .on_conflict_do_nothing(index_elements=["name"]))


def _delete_judge_traces(conn: Connection, trace_ids: list[str]) -> None:
    from ..store._retention import delete_traces

    if trace_ids:
        delete_traces(conn, trace_ids)


def write(engine: Engine, fields: Mapping[str, Any], *, explanation: str | None,
          metadata: dict[str, Any], created_at: datetime | None = None,
          judge: Mapping[str, Any] | None = None) -> str:
    """Insert or replace one evaluation (one transaction); returns its id.

    The judge's summary is read from its stored trace unless ``judge`` is given (an
    import carries it). Replacing an evaluation whose judge trace changed deletes the
    old judge trace.
    """
    with engine.begin() as conn:
        trace_id, run_id = _resolve(conn, fields["target"])
        evaluation_id = fields["id"] or evaluation_key(
            trace_id or run_id, fields["name"], fields["vendor_name"], fields["document_id"])
        judge_trace = fields["judge_trace_id"]
        summary: dict[str, Any] | None = dict(judge) if judge is not None else None
        if summary is None and judge_trace is not None:
            found = judge_summary(conn, judge_trace)
            summary = found.model_dump(mode="json", exclude_none=True) if found else None
        usage = (summary or {}).get("token_usage") or {}
        cost = (summary or {}).get("cost_metrics") or {}
        previous = conn.execute(sa.select(_ev.c.judge_trace_id).where(
            _ev.c.id == evaluation_id)).scalar_one_or_none()
        conn.execute(sa.delete(_ev).where(_ev.c.id == evaluation_id))
        if previous is not None and previous != judge_trace:
            _delete_judge_traces(conn, [previous])
        _ensure_vendor(conn, fields["vendor_name"])
        conn.execute(sa.insert(_ev).values(
            id=evaluation_id, trace_id=trace_id, run_id=run_id,
            document_id=fields["document_id"], name=fields["name"], score=fields["score"],
            label=fields["label"], passed=fields["passed"], explanation=explanation,
            error=fields["error"], source=fields["source"], vendor_name=fields["vendor_name"],
            vendor_version=fields["vendor_version"],
            created_at=created_at or datetime.now(timezone.utc), metadata=metadata,
            judge_trace_id=judge_trace, judge=summary,
            judge_provider=bounded_key(summary["provider"])
            if summary and summary.get("provider") else None,
            judge_model=bounded_key(summary["provider_model"])
            if summary and summary.get("provider_model") else None,
            judge_total_tokens=usage.get("total_tokens"),
            judge_total_cost=cost.get("total_cost"),
        ))
    return evaluation_id
