"""Pre-aggregated usage: the ``usage_rollup`` table, kept in the store's transactions.

Invariant: every stored LLM call is summed in exactly one bucket, the one its values
give *with its trace's root as stored now* (the run whose id is the call's trace id).
``usage()`` reads a call's app and request type from its run, else from that root, and
leaves a call out as a judge's when that root is a judge's root; so a call counts where
the raw query over ``llm_calls`` would put it, and the two give identical answers.

Three changes keep the invariant, each in the transaction that makes it:

- a new call is added with its root as stored (in this batch or before);
- a new root moves the calls of its trace stored in earlier batches (runs arrive
  child-before-parent) from their root-less bucket to the one with the root;
- deleting traces (retention, erasure, tenant purge) subtracts their calls first.

Runs and calls are only ever inserted (``ON CONFLICT DO NOTHING``), never updated, so a
call is counted when its row is first stored: what was stored already is looked up
before the insert, and a retried batch adds nothing. Two writers storing the same trace
at the same moment on PostgreSQL could still miss a root move (each sees only its own
rows); :func:`rebuild` recomputes the table from the stored calls.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from ._rows import COLUMNS, Encoded
from ._seen import Stored, chunks, lookup
from ._tables import llm_calls, runs, usage_rollup
from ._types import utc_day

__all__ = ["DIMENSIONS", "MEASURES", "forget_traces", "rebuild", "track_usage"]

_EVALUATION = "evaluation"  # request type of judges' traces (query._evaluations)
_TOKENS = ("input", "output", "total", "cache_read", "cache_creation", "reasoning")
#: The bucket's columns, in the order of its key.
DIMENSIONS = ("day", "provider_model", "provider", "prompt_template_hash", "app_name",
              "request_type", "run_request_type", "judge", "tenant")
#: The summed columns.
MEASURES = ("calls", "priced_calls", "total_cost", *(f"{name}_tokens" for name in _TOKENS))
_RUN_TRACE = COLUMNS["runs"].index("trace_id")

_run = runs.alias("call_run")
_root = runs.alias("root_run")


def _dimensions(with_root: bool) -> list[sa.ColumnElement[Any]]:
    """The bucket of each call, its trace's root as stored (``with_root``) or absent."""
    app: sa.ColumnElement[Any]
    request_type: sa.ColumnElement[Any]
    if with_root:
        app = sa.func.coalesce(_run.c.app_name, _root.c.app_name)
        request_type = sa.func.coalesce(_run.c.request_type, _root.c.request_type)
        judge: sa.ColumnElement[Any] = sa.case(
            (sa.and_(_root.c.id.is_not(None), _root.c.parent_id.is_(None),
                     _root.c.request_type == _EVALUATION), True), else_=False)
    else:
        app, request_type, judge = _run.c.app_name, _run.c.request_type, sa.false()
    return [utc_day(llm_calls.c.started_at), llm_calls.c.provider_model, llm_calls.c.provider,
            llm_calls.c.prompt_template_hash, app, request_type, _run.c.request_type, judge,
            _run.c.tenant]


@cache
def _sums(by: str | None, with_root: bool) -> sa.Select[Any]:
    """Sums per bucket of the calls whose ``by`` column is in the ``keys`` parameter (of
    every call when ``by`` is None). Built once: the insert path runs it per batch."""
    values = _dimensions(with_root)
    dims = [dim.label(name) for dim, name in zip(values, DIMENSIONS, strict=True)]
    # Not by a constant (the root-less judge flag): SQLite reads GROUP BY 0 as a position.
    keys = [dim for dim in values if with_root or dim is not values[DIMENSIONS.index("judge")]]
    source = llm_calls.outerjoin(_run, _run.c.id == llm_calls.c.run_id)
    if with_root:
        source = source.outerjoin(_root, _root.c.id == llm_calls.c.trace_id)
    measures = [sa.func.count().label("calls"),
                sa.func.count(llm_calls.c.total_cost).label("priced_calls"),
                sa.func.sum(llm_calls.c.total_cost).label("total_cost"),
                *(sa.func.sum(llm_calls.c[f"{name}_tokens"]).label(f"{name}_tokens")
                  for name in _TOKENS)]
    stmt = sa.select(*dims, *measures).select_from(source).group_by(*keys)
    if by is not None:
        stmt = stmt.where(llm_calls.c[by].in_(sa.bindparam("keys", expanding=True)))
    return stmt


Deltas = dict[str, dict[str, Any]]


def _add(deltas: Deltas, conn: Connection, by: str | None, keys: list[str], with_root: bool,
         sign: int) -> None:
    """Add ``sign`` times the sums of the calls whose ``by`` is in ``keys`` to ``deltas``."""
    for row in conn.execute(_sums(by, with_root), {"keys": keys} if by else {}):
        data = row._mapping
        dims = {name: data[name] for name in DIMENSIONS}
        dims["judge"] = bool(dims["judge"])
        key = json.dumps([dims[name] for name in DIMENSIONS], separators=(",", ":"))
        entry = deltas.setdefault(key, {**dims, "bucket": key,
                                        **{name: 0 for name in MEASURES}})
        for name in MEASURES:
            value = data[name]
            entry[name] += sign * (value if value is not None else 0)


@cache
def _upsert(dialect: str) -> sa.Insert:
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(usage_rollup)
    return insert.on_conflict_do_update(
        index_elements=[usage_rollup.c.bucket],
        set_={name: usage_rollup.c[name] + insert.excluded[name] for name in MEASURES})


def _apply(conn: Connection, deltas: Deltas) -> None:
    """Add ``deltas`` to their buckets (created when new); in key order, so concurrent
    writers take their row locks in one order."""
    rows = [entry for _key, entry in sorted(deltas.items())
            if any(entry[name] for name in MEASURES)]
    if not rows:
        return
    for entry in rows:
        entry["total_cost"] = Decimal(entry["total_cost"])
    conn.execute(_upsert(conn.dialect.name), rows)


@contextmanager
def track_usage(conn: Connection, encoded: Encoded, stored: Stored) -> Iterator[None]:
    """Keep ``usage_rollup`` right around the insert of ``encoded`` (inside ``conn``'s
    transaction; ``stored``: what of it was stored before): adds what is new after."""
    call_ids = list(encoded.rows["llm_calls"])
    new_roots = {run_id for run_id, row in encoded.rows["runs"].items()
                 if row[_RUN_TRACE] == run_id and run_id not in stored.runs}
    if not call_ids and not new_roots:
        yield
        return
    # Calls stored before their root: counted root-less until now.
    earlier = lookup(conn, "llm_calls", "trace_id", new_roots, wanted="run_id")
    yield
    new_calls = set(call_ids) - stored.calls
    deltas: Deltas = {}
    for chunk in chunks(new_calls | earlier):
        _add(deltas, conn, "run_id", chunk, True, 1)
    for chunk in chunks(earlier):
        _add(deltas, conn, "run_id", chunk, False, -1)
    _apply(conn, deltas)


def forget_traces(conn: Connection, trace_ids: list[str]) -> None:
    """Subtract the LLM calls of ``trace_ids`` (about to be deleted, in ``conn``'s
    transaction) from their buckets; buckets left empty go."""
    deltas: Deltas = {}
    for chunk in chunks(trace_ids):
        _add(deltas, conn, "trace_id", chunk, True, -1)
    _apply(conn, deltas)
    if deltas:
        conn.execute(sa.delete(usage_rollup).where(usage_rollup.c.calls == 0))


def rebuild(conn: Connection) -> int:
    """Recompute ``usage_rollup`` from every stored LLM call (the migration's backfill;
    a repair); returns the number of buckets."""
    conn.execute(sa.delete(usage_rollup))
    deltas: Deltas = {}
    _add(deltas, conn, None, [], True, 1)
    _apply(conn, deltas)
    return len(deltas)
