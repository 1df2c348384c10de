"""The main job (`make demo`): offline RAG runs through LangChain and LlamaIndex.

Each example answers a question over documents it creates, with ragtrail capturing
every step into the SQLite file ./ragtrail.db (or the URL given as argv[1]), and
prints the lineage of its answer: question, documents by stage with scores, prompt,
model, tokens, cost and answer. Then try: `.venv/bin/ragtrail traces`.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import langchain_rag
import llamaindex_rag

from ragtrail.store import upgrade_database


def main(db_url: str | None = None) -> list[str]:
    """Run both examples; return their trace ids."""
    # A ./ragtrail.db left by an earlier ragtrail is migrated first: a Trail refuses a
    # database at an older schema revision rather than change it unasked
    # (an application runs `ragtrail db upgrade URL` once, when it upgrades ragtrail).
    upgrade_database(db_url)
    print("=" * 30, "LangChain: LCEL RAG chain", "=" * 30)
    lc_trace = langchain_rag.main(db_url)
    print()
    print("=" * 30, "LlamaIndex: query engine", "=" * 30)
    li_trace = llamaindex_rag.main(db_url)
    print()
    where = db_url or "sqlite:///./ragtrail.db"
    print(f"Stored in {where}. Inspect with:")
    print(f"  .venv/bin/ragtrail traces --db {where}")
    print(f"  .venv/bin/ragtrail lineage {lc_trace} --db {where}")
    print("Or look in the browser (read-only web view, Ctrl-C to stop):")
    print(f"  .venv/bin/ragtrail ui --db {where}")
    print(f"  then open http://127.0.0.1:8765/traces/{lc_trace}")
    return [lc_trace, li_trace]


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
