"""Asking the trail questions: lineage, reverse document lookup, recent traces.

    python examples/lineage_queries.py [SQLITE_FILE_OR_URL]

Runs the LangChain RAG example twice (two questions), then answers:
"which documents, scores, prompt, model, tokens and dollars produced this answer?" and
"which answers used this document?".
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import langchain_rag

from ragtrail import Trail
from ragtrail_langchain import RagtrailCallbackHandler

QUESTIONS = [
    "How do readers and a writer share an SQLite database in WAL mode?",
    "What does a checkpoint copy from the write-ahead log?",
]


def main(db_url: str | None = None) -> dict[str, object]:
    """Record two answers, then query them; returns what was found (for tests)."""
    with Trail(db_url, app_name="lineage-demo") as trail:
        handler = RagtrailCallbackHandler(trail, user_id="alice", session_id="s-1")
        chain = langchain_rag.build_chain()
        trace_ids = []
        for question in QUESTIONS:
            chain.invoke(question, config={"callbacks": [handler]})
            trace_ids.append(handler.last_trace_id)
        trail.flush()

        lineage = trail.lineage(trace_ids[0])
        print(f"Q: {lineage.question}\nA: {lineage.answer}")
        for use in lineage.documents_at("in_prompt"):
            # Stored ranks start at 0; people count from 1 (as the CLI shows them).
            print(f"  in prompt #{use.rank + 1}: {use.document_id} ({use.content_hash[:12]}…)")
        call = lineage.llm_calls[0].metadata
        temperature = call.request_parameters.temperature if call.request_parameters else "-"
        print(f"  model {call.provider}/{call.provider_model}, temperature {temperature}, "
              f"{lineage.total_tokens} tokens, ${lineage.total_cost}")

        document = lineage.documents_at("in_prompt")[0].document_id
        users = trail.answers_using(document)
        print(f"Answers that used {document}:")
        for row in users:
            print(f"  {row.trace_id}  reached {row.stage.value} (rank {row.rank + 1})  "
                  f"{row.question}")

        mine = trail.traces(user_id="alice", app_name="lineage-demo", limit=10)
        print(f"alice has {len(mine)} traces in lineage-demo")
        return {"trace_ids": trace_ids, "document": document,
                "answers_using": [r.trace_id for r in users], "alice": len(mine)}


if __name__ == "__main__":
    arg = sys.argv[1] if len(sys.argv) > 1 else None
    main(arg if arg is None or "://" in arg else f"sqlite:///{arg}")
