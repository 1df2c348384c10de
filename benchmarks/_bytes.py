"""Bytes stored per RAG invocation: database growth over many invocations.

For each backend (SQLite; PostgreSQL when reachable, in a fresh schema) and each
framework (LangChain invoke, LlamaIndex query), a Trail stores ``warmup`` invocations
(the schema, the first pages, the documents' first copies), then ``invocations`` more;
growth per invocation is the size after the second flush minus the size after the
first, divided by ``invocations``. Sizes are what the database holds on disk:

- SQLite: pages in use (``page_count - freelist_count``) times the page size, after a
  WAL checkpoint, per table and index from the ``dbstat`` virtual table;
- PostgreSQL: ``pg_total_relation_size`` (heap, TOAST and indexes) of every table in
  the schema.

The same question every time: documents are stored once by content hash, so what
grows is the runs, their payloads and their links.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._common import pg_schema, pg_unreachable, say

FRAMEWORKS = ("langchain", "llamaindex")


def sqlite_sizes(path: Path) -> dict[str, int]:
    """{table or index: bytes in use} of the SQLite database at ``path``."""
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        rows = conn.execute("SELECT name, sum(pgsize) - sum(unused) FROM dbstat GROUP BY name")
        return {name: int(size) for name, size in rows}


def pg_sizes(url: str) -> dict[str, int]:
    """{table: bytes with its TOAST and indexes} of the schema ``url`` points into."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text(
                "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = current_schema() AND c.relkind = 'r'"))
            return {str(name): int(size) for name, size in rows}
    finally:
        engine.dispose()


def _workload(framework: str, trail: Any) -> tuple[Callable[[], Any], Callable[[], None]]:
    """(one invocation recorded into ``trail``, detach)."""
    if framework == "langchain":
        from ragtrail_langchain import RagtrailCallbackHandler

        from . import _lc

        invoke = _lc.workloads()["invoke"]
        callbacks = [RagtrailCallbackHandler(trail)]
        return (lambda: invoke(callbacks)), (lambda: None)
    from ragtrail_llamaindex import instrument, uninstrument

    from . import _li

    query = _li.workloads()["invoke"]
    instrument(trail)
    return (lambda: query([])), (lambda: uninstrument(trail))


def growth(url: str, sizes: Callable[[], dict[str, int]], framework: str, invocations: int,
           warmup: int) -> dict[str, Any]:
    """Bytes per invocation stored by ``framework``'s workload into ``url``."""
    from ragtrail import Trail

    with Trail(url) as trail:
        workload, detach = _workload(framework, trail)
        try:
            for _ in range(warmup):
                workload()
            if not trail.flush(120.0):
                raise RuntimeError(f"flush timed out: {trail.stats()}")
            before = sizes()
            for _ in range(invocations):
                workload()
            if not trail.flush(300.0):
                raise RuntimeError(f"flush timed out: {trail.stats()}")
            after = sizes()
        finally:
            detach()
    per_table = {name: (after.get(name, 0) - before.get(name, 0)) / invocations
                 for name in sorted(set(after) | set(before))}
    total = sum(after.values()) - sum(before.values())
    return {"bytes_per_invocation": total / invocations, "invocations": invocations,
            "size_before": sum(before.values()), "size_after": sum(after.values()),
            "per_table": {k: v for k, v in per_table.items() if v}}


def run(invocations: int, warmup: int, work_dir: Path, *, pg_url: str | None,
        frameworks: tuple[str, ...] = FRAMEWORKS) -> dict[str, Any]:
    """{backend: {framework: growth(...)}} (a backend not reachable: its skip reason)."""
    out: dict[str, Any] = {"invocations": invocations, "warmup": warmup}
    out["sqlite"] = {}
    for framework in frameworks:
        path = work_dir / f"bytes_{framework}.db"
        out["sqlite"][framework] = growth(f"sqlite:///{path}", lambda p=path: sqlite_sizes(p),
                                          framework, invocations, warmup)
        _say("sqlite", framework, out["sqlite"][framework])
    reason = pg_unreachable(pg_url) if pg_url else "no PostgreSQL URL"
    if reason is not None:
        out["postgresql"] = {"skipped": reason}
        say(f"  bytes: postgresql skipped: {reason}")
        return out
    out["postgresql"] = {}
    for framework in frameworks:
        with pg_schema(pg_url) as url:  # type: ignore[arg-type]
            out["postgresql"][framework] = growth(url, lambda u=url: pg_sizes(u), framework,
                                                  invocations, warmup)
        _say("postgresql", framework, out["postgresql"][framework])
    return out


def _say(backend: str, framework: str, result: dict[str, Any]) -> None:
    top = sorted(result["per_table"].items(), key=lambda kv: -kv[1])[:4]
    say(f"  bytes {backend:10} {framework:10} {result['bytes_per_invocation']:9,.0f} B per "
        f"invocation over {result['invocations']:,} (largest: "
        + ", ".join(f"{name} {size:,.0f}" for name, size in top) + ")")
