"""The core's rerank module (plan, record, infer), shared by both adapters: a table."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ragtrail.capture import DocumentInput, Recorder
from ragtrail.capture.rerank import record_inferred_reranker, record_reranking, rerank_plan
from ragtrail.schemas import DocStage, Framework, RunKind
from ragtrail.sink import ListSink

_PIECES = {"a1": "a", "c1": "c"}  # pieces cut from an input, by output key


def _piece_of(inputs: list[str], outputs: list[str]) -> Callable[[int], int | None]:
    def piece_of(position: int) -> int | None:
        source = _PIECES.get(outputs[position])
        return inputs.index(source) if source in inputs else None

    return piece_of


# (case, inputs, outputs, pieces allowed, expected: None, or (ranks, pieces, same, identity))
CASES = [
    ("reordered", ["a", "b", "c"], ["c", "a", "b"], False, ((2, 0, 1), None, False, False)),
    ("filtered", ["a", "b", "c"], ["a", "b"], False, ((0, 1), None, False, False)),
    ("top_n", ["a", "b", "c"], ["b"], False, ((1,), None, False, False)),
    ("pass-through", ["a", "b"], ["a", "b"], False, ((0, 1), None, True, True)),
    ("nothing kept", ["a", "b"], [], False, ((), None, False, False)),
    ("input twice", ["a", "a"], ["a", "a"], False, ((0, 0), None, True, False)),
    ("new document", ["a", "b"], ["b", "x"], False, None),
    ("rewritten text", ["a", "b"], ["a1"], False, None),
    ("piece of an input", ["a", "b", "c"], ["c1", "a1", "b"], True,
     ((2, 0, 1), (True, True, False), False, False)),
    ("piece of nothing", ["a", "b"], ["x"], True, None),
]


@pytest.mark.parametrize(("inputs", "outputs", "pieces", "expected"),
                         [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_rerank_plan(inputs: list[str], outputs: list[str], pieces: bool,
                     expected: tuple[tuple[int, ...], tuple[bool, ...] | None, bool, bool] | None,
                     ) -> None:
    plan = rerank_plan(inputs, outputs,
                       piece_of=_piece_of(inputs, outputs) if pieces else None)
    if expected is None:
        assert plan is None
        return
    assert plan is not None
    assert (plan.input_ranks, plan.pieces, plan.same_as_input, plan.identity) == expected
    assert plan.input_count == len(inputs)


def test_node_keys_are_any_hashable_identity() -> None:
    # LlamaIndex's: the same node id with the same text; another text is another node.
    inputs = [("n1", "h1"), ("n2", "h2")]
    plan = rerank_plan(inputs, [("n2", "h2"), ("n1", "h1")])
    assert plan is not None and plan.input_ranks == (1, 0)
    assert rerank_plan(inputs, [("n1", "changed")]) is None


@pytest.mark.parametrize(("kind", "stored_kind"), [
    (RunKind.CHAIN, RunKind.RERANKER),  # recognised when it ends: becomes a reranker
    (RunKind.RERANKER, RunKind.RERANKER),
])
def test_record_reranking_makes_the_run_a_reranker_with_ranked_documents(
        kind: RunKind, stored_kind: RunKind) -> None:
    sink = ListSink()
    recorder = Recorder(sink)
    recorder.start_run("r", kind=kind, name="step")
    record_reranking(recorder, "r", [DocumentInput(text="b", input_rank=1),
                                     DocumentInput(text="a", input_rank=0)], kind=kind)
    recorder.end_run("r")
    (record,) = sink.records
    assert record.run.kind is stored_kind
    assert [(link.stage, link.rank, link.input_rank) for link in record.links] == [
        (DocStage.RERANKED, 0, 1), (DocStage.RERANKED, 1, 0)]


def test_an_inferred_reranker_is_a_child_run_marked_inferred() -> None:
    sink = ListSink()
    recorder = Recorder(sink)
    recorder.start_run("parent", kind=RunKind.RETRIEVER, name="compression")
    record_inferred_reranker(
        recorder, "inferred", parent_id="parent", name="InferredReranker",
        framework=Framework.LANGCHAIN, inputs={"documents": ["a", "b"]},
        outputs=["b"], documents=[DocumentInput(text="b", input_rank=1)],
        metadata={"postprocessors": ["Rerank"]})
    recorder.end_run("parent")
    child = next(r for r in sink.records if r.run.id == "inferred")
    assert child.run.parent_id == "parent" and child.run.kind is RunKind.RERANKER
    assert child.run.metadata == {"inferred": True, "postprocessors": ["Rerank"]}
    assert child.run.outputs == ["b"]
    assert [(link.stage, link.input_rank) for link in child.links] == [(DocStage.RERANKED, 1)]
