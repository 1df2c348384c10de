"""Per-handler bookkeeping of the LangChain runs a handler is recording.

The Recorder keeps the runs themselves; this table keeps only what the adapter needs to
interpret later callbacks: which runs this handler owns (so a handler attached twice
records once), their open children (to close an abandoned stream's steps), and the
documents seen on the way (to recognise reranking).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field

from ragtrail.capture import fork_safe_lock
from ragtrail.schemas import RunKind

from ._documents import DocList

__all__ = ["RunState", "RunTable"]


@dataclass
class RunState:
    """What the adapter remembers about one open run."""

    key: str
    kind: RunKind
    parent: str | None  # parent's key when this handler records the parent too
    lc_root: bool  # LangChain reported no parent run
    marked: bool = False  # carries the explicit reranker mark
    name: str = ""
    integration: str = ""  # ls_integration metadata (langgraph, langchain_create_agent)
    owned: bool = True  # False: another handler on the same Recorder records it
    copies: int = 1  # how many times this handler is attached to the run
    seen: dict[str, int] = field(default_factory=dict)
    children: set[str] = field(default_factory=set)
    first_token: bool = False
    streamed: bool = False  # a chunk arrived: stored as the call's ``streamed``
    provider_unknown: bool = False  # the model reported no provider of its own
    provider_guess: str | None = None  # then: the one its class name suggests
    provider_inferable: bool = False  # a class of the user's own: infer from the model
    input_docs: DocList | None = None
    child_docs: DocList | None = None  # output of the only child retriever
    child_retrievers: int = 0
    reranked: tuple[str, ...] | None = None  # output hashes of a reranker below
    cut: bool = False  # an ancestor stream was closed early: end as cancelled
    cut_at: float = 0.0


class RunTable:
    """Thread-safe map of open run ids to :class:`RunState`, bounded in size."""

    def __init__(self, max_runs: int = 20_000) -> None:
        self._lock = fork_safe_lock(self)
        self._runs: OrderedDict[str, RunState] = OrderedDict()
        self._cut: dict[str, RunState] = {}
        self._max_runs = max_runs

    def claim(self, state: RunState) -> bool:
        """Register a starting run; False when this handler already has it (a copy)."""
        with self._lock:
            known = self._runs.get(state.key)
            if known is not None:
                known.copies += 1
                return False
            self._runs[state.key] = state
            parent = self._runs.get(state.parent) if state.parent else None
            if parent is not None:
                parent.children.add(state.key)
            while len(self._runs) > self._max_runs:
                # The Recorder abandons runs that never end; forget them here too.
                self._runs.popitem(last=False)
            return True

    def get(self, key: str) -> RunState | None:
        """The state of an open run this handler owns."""
        state = self._runs.get(key)
        return state if state is not None and state.owned else None

    def parent_of(self, state: RunState) -> RunState | None:
        """The owned parent of a run, if any."""
        return self.get(state.parent) if state.parent else None

    def once(self, state: RunState, event: str) -> bool:
        """True for the first of the ``copies`` identical deliveries of an event."""
        with self._lock:
            count = state.seen.get(event, 0)
            state.seen[event] = count + 1
            return count % state.copies == 0

    def report_to_parent(
        self, state: RunState, *, docs: DocList | None, reranked: tuple[str, ...] | None
    ) -> None:
        """Tell the parent what an ending child produced (for reranking detection)."""
        with self._lock:
            parent = self._runs.get(state.parent) if state.parent else None
            if parent is None:
                return
            if state.kind is RunKind.RETRIEVER and parent.kind is RunKind.RETRIEVER:
                parent.child_retrievers += 1
                parent.child_docs = docs
            if reranked is not None:
                parent.reranked = reranked

    def release(self, key: str) -> RunState | None:
        """Forget an ending run; None when unknown or already released (a copy)."""
        with self._lock:
            state = self._runs.pop(key, None)
            self._cut.pop(key, None)
            if state is not None and state.parent:
                parent = self._runs.get(state.parent)
                if parent is not None:
                    parent.children.discard(key)
            return state

    def cut_below(self, state: RunState) -> int:
        """Mark every open descendant as cut short; returns how many."""
        now = time.monotonic()
        with self._lock:
            stack, count = list(state.children), 0
            while stack:
                child = self._runs.get(stack.pop())
                if child is None or child.cut:
                    continue
                child.cut, child.cut_at = True, now
                self._cut[child.key] = child
                stack.extend(child.children)
                count += 1
            return count

    @property
    def has_cuts(self) -> bool:
        """Whether some run was cut short and has not ended yet (cheap, unlocked)."""
        return bool(self._cut)

    def overdue_cuts(self, grace_s: float) -> list[RunState]:
        """Cut runs that have not ended within ``grace_s``; they are released."""
        if not self._cut:
            return []
        limit = time.monotonic() - grace_s
        with self._lock:
            late = [s for s in self._cut.values() if s.cut_at <= limit]
        return [s for s in late if self.release(s.key) is not None]

    def __len__(self) -> int:
        return len(self._runs)
