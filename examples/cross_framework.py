"""A LlamaIndex query engine called inside a LangChain chain: one trace, one lineage.

    python examples/cross_framework.py [SQLITE_FILE_OR_URL]

The LangChain chain rewrites the question, asks a LlamaIndex query engine (inside a
RunnableLambda), and formats the answer. ragtrail records the LlamaIndex runs as a
subtree of the LangChain step that called them, because each adapter reports the run
it is executing and the Recorder asks for that when a run starts without a parent.
"""

from __future__ import annotations

import sys
from pathlib import Path

from langchain_core.runnables import RunnableLambda

sys.path.insert(0, str(Path(__file__).resolve().parent))

import llamaindex_rag

from ragtrail import Trail
from ragtrail_langchain import RagtrailCallbackHandler
from ragtrail_llamaindex import instrument, uninstrument


def main(db_url: str | None = None) -> str:
    """Run the mixed pipeline once, print its tree, return the trace id."""
    from ragtrail.report import to_text, trace_tree

    with Trail(db_url, app_name="cross-framework-demo") as trail:
        instrument(trail)  # LlamaIndex side: every query engine in this process
        try:
            engine = llamaindex_rag.build_query_engine()
            chain = (
                RunnableLambda(lambda q: q.strip().rstrip("?") + "?", name="normalise")
                | RunnableLambda(lambda q: str(engine.query(q)), name="ask_llamaindex")
                | RunnableLambda(lambda a: f"Answer: {a}", name="format")
            )
            handler = RagtrailCallbackHandler(trail)
            print(chain.invoke(llamaindex_rag.QUESTION, config={"callbacks": [handler]}))
        finally:
            uninstrument(trail)
        trail.flush()
        trace_id = handler.last_trace_id
        if trace_id is None:
            raise RuntimeError("the run was not recorded")
        print(to_text(trace_tree(trail.lineage(trace_id))))
        return trace_id


if __name__ == "__main__":
    arg = sys.argv[1] if len(sys.argv) > 1 else None
    main(arg if arg is None or "://" in arg else f"sqlite:///{arg}")
