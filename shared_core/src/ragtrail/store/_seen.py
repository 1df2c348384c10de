"""What of a batch is stored already: looked up once per write, before the insert.

Both kept tables (``usage_rollup``, ``quality_rollup``) add only what a batch stores
for the first time (a retried batch adds nothing), so both need the batch's run ids and
LLM call ids that are in the database before its insert. They are looked up here once,
with statements built once (an expanding ``IN``), and handed to both trackers.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ._rows import Encoded
from ._tables import llm_calls, runs

__all__ = ["IN_CHUNK", "Stored", "chunks", "lookup", "stored_before"]

IN_CHUNK = 500  # bound on SQL IN lists (SQLite allows 32766 variables)
_TABLES = {"runs": runs, "llm_calls": llm_calls}


@dataclass(frozen=True)
class Stored:
    """The ids of a batch's rows that were stored before it: ``runs`` (run ids) and
    ``calls`` (the run ids of LLM calls)."""

    runs: frozenset[str]
    calls: frozenset[str]


def chunks(items: Iterable[str]) -> Iterator[list[str]]:
    """``items``, distinct and sorted, in lists of at most :data:`IN_CHUNK`."""
    ordered = sorted(set(items))
    for start in range(0, len(ordered), IN_CHUNK):
        yield ordered[start:start + IN_CHUNK]


@cache
def _lookup(table: str, column: str, wanted: str) -> sa.Select[Any]:
    found = _TABLES[table]
    return sa.select(found.c[wanted]).where(
        found.c[column].in_(sa.bindparam("keys", expanding=True)))


def lookup(conn: Connection, table: str, column: str, keys: Iterable[str],
           wanted: str | None = None) -> set[str]:
    """The ``wanted`` values (else ``column``'s) of the stored rows of ``table`` whose
    ``column`` is one of ``keys``."""
    stmt = _lookup(table, column, wanted or column)
    found: set[str] = set()
    for chunk in chunks(keys):
        found.update(conn.execute(stmt, {"keys": chunk}).scalars())
    return found


def stored_before(conn: Connection, encoded: Encoded) -> Stored:
    """Which of ``encoded``'s runs and LLM calls are stored already (call it inside the
    writing transaction, before the insert)."""
    return Stored(frozenset(lookup(conn, "runs", "id", encoded.rows["runs"])),
                  frozenset(lookup(conn, "llm_calls", "run_id", encoded.rows["llm_calls"])))
