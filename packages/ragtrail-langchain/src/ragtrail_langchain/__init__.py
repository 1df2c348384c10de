"""ragtrail for LangChain: one callback captures chains, retrievers, rerankers and LLM calls.

    from ragtrail import Trail
    from ragtrail_langchain import RagtrailCallbackHandler

    trail = Trail()
    handler = RagtrailCallbackHandler(trail, user_id="u-42", session_id="s-1")
    answer = chain.invoke(question, config={"callbacks": [handler]})
    trail.flush()
    print(trail.lineage(handler.last_trace_id).documents)

Without passing callbacks:

- ``instrument(trail)`` attaches a handler to every LangChain run in the process
  (``uninstrument()`` stops it);
- ``RAGTRAIL_TRACING=true`` does the same on the default ``Trail()`` (``$RAGTRAIL_URL``,
  else ``./ragtrail.db``). Importing ``ragtrail_langchain`` registers the switch with
  LangChain; with the variable set, the package's ``ragtrail_langchain.pth`` does that
  import when Python starts, so an application needs no code change at all.

A run that receives a ragtrail handler twice is recorded once.
"""

from __future__ import annotations

from ._handler import RagtrailCallbackHandler, StreamAbandoned
from ._ragas import evaluate_ragas
from ._rerank import mark_reranker
from ._switch import install as _install
from ._switch import instrument, uninstrument

__all__ = [
    "RagtrailCallbackHandler",
    "StreamAbandoned",
    "evaluate_ragas",
    "instrument",
    "mark_reranker",
    "uninstrument",
]

_install()
