"""What the LangChain adapter remembers about one run it records.

The Recorder keeps the runs and is the only run table: this state rides along with the
run as its ``state`` (see :meth:`ragtrail.capture.Recorder.start_run`), and holds only
what the adapter needs to interpret later callbacks: how many times the handler is
attached to the run (so a handler attached twice records once) and the documents seen
on the way (to recognise reranking).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ragtrail.schemas import RunKind

from ._documents import DocList

__all__ = ["RunState"]


@dataclass(eq=False)
class RunState:
    """What the adapter remembers about one open run."""

    key: str
    kind: RunKind
    parent: str | None  # parent's key as LangChain reported it
    lc_root: bool  # LangChain reported no parent run
    marked: bool = False  # carries the explicit reranker mark
    name: str = ""
    integration: str = ""  # ls_integration metadata (langgraph, langchain_create_agent)
    copies: int = 1  # how many times this handler is attached to the run
    seen: dict[str, int] = field(default_factory=dict)
    first_token: bool = False
    streamed: bool = False  # a chunk arrived: stored as the call's ``streamed``
    provider_unknown: bool = False  # the model reported no provider of its own
    provider_guess: str | None = None  # then: the one its class name suggests
    provider_inferable: bool = False  # a class of the user's own: infer from the model
    input_docs: DocList | None = None
    child_docs: DocList | None = None  # output of the only child retriever
    child_retrievers: int = 0
    reranked: tuple[str, ...] | None = None  # output hashes of a reranker below
