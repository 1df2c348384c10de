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

    class FloorHandler(BaseCallbackHandler):
        """Serializes every payload once (Rust) and keeps the rows for ``flush``."""

        def __init__(self) -> None:
            self.rows: list[tuple[str, str | None, str, float, bytes]] = []

        def _keep(self, run_id: UUID, parent_run_id: UUID | None, kind: str,
                  payload: Any) -> None:
            self.rows.append((str(run_id), str(parent_run_id) if parent_run_id else None,
                              kind, time.time(), to_json(payload, fallback=str)))

        def on_chain_start(self, serialized: Any, inputs: Any, *, run_id: UUID,
                           parent_run_id: UUID | None = None, **kwargs: Any) -> None:
            self._keep(run_id, parent_run_id, "chain", inputs)

        def on_chain_end(self, outputs: Any, *, run_id: UUID,
                         parent_run_id: UUID | None = None, **kwargs: Any) -> None:
            self._keep(run_id, parent_run_id, "end", outputs)

        def on_retriever_start(self, serialized: Any, query: str, *, run_id: UUID,
                               parent_run_id: UUID | None = None, **kwargs: Any) -> None:
            self._keep(run_id, parent_run_id, "retriever", query)

        def on_retriever_end(self, documents: Any, *, run_id: UUID,
                             parent_run_id: UUID | None = None, **kwargs: Any) -> None:
            self._keep(run_id, parent_run_id, "end", documents)

        def on_chat_model_start(self, serialized: Any, messages: Any, *, run_id: UUID,
                                parent_run_id: UUID | None = None, **kwargs: Any) -> None:
            self._keep(run_id, parent_run_id, "llm", messages)

        def on_llm_start(self, serialized: Any, prompts: Any, *, run_id: UUID,
                         parent_run_id: UUID | None = None, **kwargs: Any) -> None:
            self._keep(run_id, parent_run_id, "llm", prompts)

        def on_llm_end(self, response: Any, *, run_id: UUID,
                       parent_run_id: UUID | None = None, **kwargs: Any) -> None:
            self._keep(run_id, parent_run_id, "end", response)

    handler = FloorHandler()

    def flush() -> None:
        rows, handler.rows = handler.rows, []
        with connection:
            connection.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?)", rows)

    return handler, flush
