"""The floor of a stored trail: the least any LangChain handler must do to keep one.

``FloorHandler`` keeps, per callback, the run id, the parent's id, a kind, a timestamp
and the callback's payload serialized by pydantic-core's Rust ``to_json``, and its
flush inserts those rows into one SQLite table. No redaction, no size bounds, no cycle
or secret handling, no run records, lineage paths, document links, LLM usage or cost:
only what storing each step's inputs and outputs cannot do without. Its ratio to
``none`` is the lower bound for a handler that persists payloads at all (see
BENCHMARKS.md, "Fifth round").
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any
from uuid import UUID

from pydantic_core import to_json


def floor_handler(db_path: Path) -> tuple[Any, Any]:
    """(handler, flush) writing to a SQLite file at ``db_path``."""
    from langchain_core.callbacks import BaseCallbackHandler

    connection = sqlite3.connect(db_path, check_same_thread=False)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA synchronous = NORMAL")
    connection.execute("CREATE TABLE IF NOT EXISTS events (run_id TEXT, parent_id TEXT, "
                       "kind TEXT, at REAL, payload TEXT)")
    connection.execute("CREATE INDEX IF NOT EXISTS events_run ON events (run_id)")

    rows: list[tuple[str, str | None, str, float, bytes]] = []

    def keep(run_id: UUID, parent_run_id: UUID | None, kind: str, payload: Any) -> None:
        rows.append((str(run_id), str(parent_run_id) if parent_run_id else None, kind,
                     time.time(), to_json(payload, fallback=str)))

    def on_start(kind: str) -> Any:
        def callback(self: Any, serialized: Any, payload: Any, *, run_id: UUID,
                     parent_run_id: UUID | None = None, **kwargs: Any) -> None:
            keep(run_id, parent_run_id, kind, payload)
        return callback

    def on_end(self: Any, payload: Any, *, run_id: UUID, parent_run_id: UUID | None = None,
               **kwargs: Any) -> None:
        keep(run_id, parent_run_id, "end", payload)

    class FloorHandler(BaseCallbackHandler):
        """Serializes every payload once (Rust) and keeps the rows for ``flush``."""

        on_chain_start = on_start("chain")
        on_retriever_start = on_start("retriever")
        on_chat_model_start = on_start("llm")
        on_llm_start = on_start("llm")
        on_chain_end = on_retriever_end = on_llm_end = on_end

    handler = FloorHandler()

    def flush() -> None:
        taken = rows[:]
        del rows[:len(taken)]
        with connection:
            connection.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?)", taken)

    return handler, flush
