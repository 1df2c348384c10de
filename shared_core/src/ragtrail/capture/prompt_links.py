"""Prompt links: which of a trace's documents reached the prompt of an answering LLM call.

The in-prompt rule: a document is linked at stage ``in_prompt`` only when its text
reached the prompt of an *answering* call (see :func:`answering`); it is found in the
prompt by probes of its text kept when the trace first saw it (see :func:`probes`).
"""

from __future__ import annotations

from collections.abc import Mapping

from ..schemas import NON_ANSWERING_KINDS, ROLE_KEY, DocStage, StepRole
from ._state import OpenRun, PendingLink, TraceState

__all__ = ["answering", "link_in_prompt", "non_answering_step", "probes"]

_PROBE_CHARS = 200
_ROLES = frozenset(role.value for role in StepRole)


def probes(text: str) -> tuple[str, ...]:
    """Texts to find a document by in a prompt: all of it, or its two ends when long."""
    stripped = text.strip()
    if len(stripped) <= 2 * _PROBE_CHARS:
        return (stripped,) if stripped else ()
    return (stripped[:_PROBE_CHARS], stripped[-_PROBE_CHARS:])


def answering(run: OpenRun, open_runs: Mapping[str, OpenRun]) -> bool:
    """Whether an LLM call may produce (part of) the answer: neither it nor an open
    ancestor is a non-answering step (see :meth:`Recorder.is_answering`). Called under
    the Recorder's lock."""
    seen = 0
    node: OpenRun | None = run
    while node is not None and seen < 10_000:
        if node is not run and node.kind in NON_ANSWERING_KINDS:
            return False
        if node.metadata.get(ROLE_KEY) in _ROLES:
            return False
        node = open_runs.get(node.parent_id) if node.parent_id is not None else None
        seen += 1
    return True


def non_answering_step(run: OpenRun) -> bool:
    """A step whose LLM calls are not answering calls, by its kind or declared role."""
    return run.kind in NON_ANSWERING_KINDS or run.metadata.get(ROLE_KEY) in _ROLES


def link_in_prompt(run: OpenRun, state: TraceState, prompt: str) -> None:
    """Link to ``run`` at stage ``in_prompt`` the trace's documents found in ``prompt``."""
    linked = {link.content_hash for link in run.links if link.stage is DocStage.IN_PROMPT}
    found: list[tuple[int, str, str]] = []
    for digest, (probes, doc_id) in state.documents.items():
        if digest in linked or not probes:
            continue
        position = prompt.find(probes[0])
        if position >= 0 and all(p in prompt for p in probes[1:]):
            found.append((position, digest, doc_id))
    # Rank = order of appearance in the prompt, which is what the model read.
    rank = len(linked)
    for _, digest, doc_id in sorted(found):
        run.links.append(PendingLink(digest, doc_id, DocStage.IN_PROMPT, rank, None, None))
        rank += 1
