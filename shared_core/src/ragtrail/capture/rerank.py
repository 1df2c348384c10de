"""Reranking, once for both adapters: plan, infer, record.

- :func:`rerank_plan`: where each document a step returned stood among those it was
  given, or None when the step is not a reranker (it changed or added documents).
- :func:`record_reranking`: a run's reranked documents (the run becomes a reranker).
- :func:`record_inferred_reranker`: a reranker the framework did not report (a LangChain
  document compressor, a LlamaIndex postprocessor on the async path), stored as a run
  of its own under the step that revealed it, marked ``inferred``.

Adapters only find the documents (their identity keys, texts and scores); what makes a
reranker, and how it is stored, is decided here.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..schemas import DocStage, Framework, RunKind
from .recorder import DocumentInput, Recorder

__all__ = ["RerankPlan", "record_inferred_reranker", "record_reranking", "rerank_plan"]


@dataclass(frozen=True)
class RerankPlan:
    """Where each output of a reranking step stood in its input."""

    #: Per output, the input position it holds (its first, for an input given twice),
    #: or, for a piece cut from an input document, that document's position.
    input_ranks: tuple[int, ...]
    #: Per output, whether it is such a piece (then named after its source); None when
    #: no output is.
    pieces: tuple[bool, ...] | None
    #: The outputs are the inputs themselves, in the same order (a pass-through).
    same_as_input: bool
    #: How many inputs there were.
    input_count: int

    @property
    def identity(self) -> bool:
        """Every input kept at its own position (nothing reordered, nothing dropped)."""
        return self.input_ranks == tuple(range(self.input_count))


def rerank_plan(
    inputs: Sequence[Hashable],
    outputs: Sequence[Hashable],
    *,
    piece_of: Callable[[int], int | None] | None = None,
) -> RerankPlan | None:
    """Plan a reranking from the identity keys of the documents in and out.

    Keys are whatever identifies a document for the framework (a content hash; a node
    id with its text's hash). An output whose key is not among the inputs makes the
    step no reranker (None), unless ``piece_of(output_position)`` names the input
    position it was cut from (a splitter inside a compressor pipeline).
    """
    first: dict[Hashable, int] = {}
    for position, key in enumerate(inputs):
        first.setdefault(key, position)
    ranks: list[int] = []
    pieces: list[bool] = []
    for position, key in enumerate(outputs):
        at = first.get(key)
        piece = at is None
        if at is None:
            at = piece_of(position) if piece_of is not None else None
            if at is None:
                return None
        ranks.append(at)
        pieces.append(piece)
    return RerankPlan(
        input_ranks=tuple(ranks),
        pieces=tuple(pieces) if any(pieces) else None,
        same_as_input=tuple(outputs) == tuple(inputs),
        input_count=len(inputs),
    )


def record_reranking(
    recorder: Recorder, run_id: str, documents: Iterable[DocumentInput], *, kind: RunKind | None
) -> None:
    """Store a run's reranked documents; the run becomes a reranker (``kind``: its kind
    as the adapter knows it, so a run known to be a reranker is not changed again)."""
    if kind is not RunKind.RERANKER:
        recorder.set_kind(run_id, RunKind.RERANKER)
    recorder.add_documents(run_id, documents, stage=DocStage.RERANKED)


def record_inferred_reranker(
    recorder: Recorder,
    run_id: str,
    *,
    parent_id: str,
    name: str,
    framework: Framework,
    inputs: Any,
    outputs: Any,
    documents: Iterable[DocumentInput],
    metadata: Mapping[str, Any] | None = None,
) -> None:
    """Store a reranker the framework did not report as a run of its own, ``inferred``
    (it starts and ends now: its own timing is not known)."""
    recorder.start_run(run_id, kind=RunKind.RERANKER, name=name, framework=framework,
                       parent_id=parent_id, inputs=inputs,
                       metadata={"inferred": True, **(metadata or {})})
    recorder.add_documents(run_id, documents, stage=DocStage.RERANKED)
    recorder.end_run(run_id, outputs=outputs)
