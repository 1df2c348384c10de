"""The same trail on PostgreSQL: many processes and hosts writing to one database.

    python examples/postgres.py postgresql+psycopg://postgres@127.0.0.1:5432/test

Needs `pip install "ragtrail[postgres]"` (psycopg 3). Tables are created on first use of
an empty database; `ragtrail db upgrade URL` migrates an existing one.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import langchain_rag

from ragtrail import Trail
from ragtrail_langchain import RagtrailCallbackHandler

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def main(db_url: str | None = None) -> str:
    """Record one RAG answer in PostgreSQL and read its lineage back; returns the trace id."""
    url = db_url or os.environ.get("RAGTRAIL_URL") or DEFAULT_URL
    with Trail(url, app_name="postgres-demo") as trail:
        handler = RagtrailCallbackHandler(trail)
        langchain_rag.build_chain().invoke(langchain_rag.QUESTION,
                                           config={"callbacks": [handler]})
        trail.flush()
        trace_id = handler.last_trace_id
        if trace_id is None:
            raise RuntimeError("the run was not recorded")
        langchain_rag.show(trail, trace_id)
        return trace_id


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
