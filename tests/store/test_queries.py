"""The read side on SQLite and PostgreSQL: lineage, traces, answers_using, usage.

Every test writes hand-built RAG traces (chain -> retriever -> reranker -> llm, plus a
parser starting at the same instant as the LLM call) as CapturedRun records, children
first and across batches, the way the writer delivers them, then reads them back.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from urllib.parse import quote

import pytest
import sqlalchemy as sa

from ragtrail.errors import ConfigError, NotFoundError
from ragtrail.query import (
    DocumentUsage,
    Lineage,
    TraceSummary,
    answers_using,
    lineage,
    traces,
    usage,
)
from ragtrail.schemas import (
    CapturedRun,
    DocStage,
    Document,
    DocumentLink,
    LLMCostMetrics,
    LLMMetadata,
    LLMPerformanceMetrics,
    LLMRateLimitInfo,
    LLMRequestParameters,
    LLMResponseMetadata,
    LLMTokenUsage,
    PriceStatus,
    Run,
    RunError,
    RunKind,
    RunStatus,
    content_hash,
)
from ragtrail.store import SqlStore, open_store
from ragtrail.testing.internals import links_statement, query_documents, roots_statement

UTC = timezone.utc
T_A = datetime(2024, 3, 10, 12, 0, 0, 123456, tzinfo=UTC)
# 23:30 in New York on the 10th is the 11th in UTC: usage by day must say 2024-03-11.
T_B = datetime(2024, 3, 10, 23, 30, 0, 654321, tzinfo=timezone(timedelta(hours=-5)))
T_C = datetime(2024, 3, 11, 9, 0, 0, 1, tzinfo=UTC)
COST_A = Decimal("0.0000345")
COST_B = Decimal("0.0001000001")
TEMPLATE_1 = "Answer from the context: {context}\nQ: {question}"
TEMPLATE_2 = "Be brief. {question}"

DOCS = [
    Document.from_text(
        "WAL lets readers and a writer work at once.", document_id="kb/wal.md#0",
        metadata={"source": "kb/wal.md", "page": 1},
    ),
    Document.from_text(
        "Checkpoints move WAL pages into the database.", document_id="kb/wal.md#1",
        metadata={"source": "kb/wal.md", "page": 2},
    ),
    Document.from_text(
        "Write-ahead logging appends changes to a log first.", document_id="kb/intro.md#4",
        metadata={"source": "kb/intro.md", "tags": ["basics"]},
    ),
]


def _path(parent_path: str | None, started: datetime, run_id: str) -> str:
    step = f"{started.astimezone(UTC):%Y%m%dT%H%M%S%fZ}{run_id}"
    return step if parent_path is None else f"{parent_path}.{step}"


def _llm_meta(model: str, provider: str, cost: Decimal | None, template: str,
              start: datetime) -> LLMMetadata:
    priced = cost is not None
    return LLMMetadata(
        provider=provider,
        provider_model=model,
        token_usage=LLMTokenUsage(input_tokens=120, output_tokens=30, total_tokens=150,
                                  cache_read_tokens=20, cache_creation_tokens=4,
                                  reasoning_tokens=5),
        cost_metrics=LLMCostMetrics(
            input_cost=Decimal("0.000015") if priced else None,
            output_cost=Decimal("0.000018") if priced else None,
            cache_read_cost=Decimal("0.0000015") if priced else None,
            total_cost=cost,
            input_price_per_1k=Decimal("0.00015") if priced else None,
            output_price_per_1k=Decimal("0.0006") if priced else None,
            currency="USD" if priced else None,
            price_source="genai-prices 0.0.40" if priced else None,
            price_status=PriceStatus.PRICED if priced else PriceStatus.UNKNOWN_MODEL,
        ),
        performance_metrics=LLMPerformanceMetrics(total_duration_ms=812.5,
                                                  time_to_first_token_ms=120.25),
        request_parameters=LLMRequestParameters(model=model, temperature=0.2, max_tokens=256,
                                                stop_sequences=["\nQ:"], seed=7),
        response_metadata=LLMResponseMetadata(finish_reason="stop", model_version=f"{model}-1",
                                              request_id="req-123", system_fingerprint="fp_9"),
        rate_limit_info=LLMRateLimitInfo(requests_limit=500, requests_remaining=499,
                                         requests_reset_at=start + timedelta(seconds=1.000001)),
        provider_specific={"service_tier": "default", "logprobs": None},
        request_timestamp=start,
        response_timestamp=start + timedelta(microseconds=812_500),
        messages=[{"role": "system", "content": "Answer from the context."},
                  {"role": "user", "content": "What is WAL?"}],
        output_text="Write-ahead logging.",
        prompt_template=template,
        prompt_variables={"question": "What is WAL?"},
        prompt_template_hash=content_hash(template),
    )


def rag_trace(
    tid: str,
    start: datetime,
    *,
    app: str = "support-bot",
    user: str = "user-1",
    session: str = "sess-1",
    model: str = "gpt-4o-mini",
    provider: str = "openai",
    cost: Decimal | None = COST_A,
    template: str = TEMPLATE_1,
    status: RunStatus = RunStatus.OK,
    prompt_docs: tuple[int, ...] = (2, 0),
) -> list[CapturedRun]:
    """Root chain, retriever (3 docs), reranker (prompt_docs), llm (prompt_docs), parser."""
    root_path = _path(None, start, tid)

    def run(suffix: str, kind: RunKind, offset_s: float, **fields: object) -> Run:
        run_id = f"{tid}-{suffix}" if suffix else tid
        started = start + timedelta(seconds=offset_s)
        return Run(
            id=run_id, trace_id=tid, parent_id=None if not suffix else tid,
            path=root_path if not suffix else _path(root_path, started, run_id),
            kind=kind, name=f"{kind.value}:{tid}", started_at=started,
            ended_at=started + timedelta(milliseconds=250), duration_ms=250.0, **fields,
        )

    def links(run_id: str, stage: DocStage, order: tuple[int, ...], scores: list[float | None],
              input_ranks: bool = False) -> list[DocumentLink]:
        return [
            DocumentLink(run_id=run_id, trace_id=tid, content_hash=DOCS[i].content_hash,
                         document_id=DOCS[i].document_id, stage=stage, rank=rank,
                         score=scores[rank], input_rank=i if input_ranks else None)
            for rank, i in enumerate(order)
        ]

    error = RunError(type="ValueError", message="bad answer") if status is RunStatus.ERROR else None
    root = run("", RunKind.CHAIN, 0, status=status, error=error,
               inputs={"question": "What is WAL?"}, outputs={"answer": "Write-ahead logging."},
               tags=["prod", tid], metadata={"tenant": 7, "nested": {"ok": True}},
               app_name=app, app_version="1.4.0", user_hash=user, session_id=session,
               environment={"hostname": "web-1", "python_version": "3.11.7"})
    retriever = run("ret", RunKind.RETRIEVER, 0.1, inputs={"query": "What is WAL?"},
                    outputs=[d.document_id for d in DOCS])
    reranker = run("rr", RunKind.RERANKER, 0.3, inputs={"query": "What is WAL?"})
    llm = run("llm", RunKind.LLM, 0.5, inputs={"prompt": "Answer from the context..."},
              outputs="Write-ahead logging.")
    # Same start as the LLM call, id sorting before it, path after: lineage breaks the
    # tie by path, so the parser comes after.
    parser = run("a-parser", RunKind.PARSER, 0.5, outputs={"answer": "Write-ahead logging."})
    parser = parser.model_copy(update={"path": _path(root_path, parser.started_at, tid + "-zz")})
    return [
        CapturedRun(run=root),
        CapturedRun(run=retriever, documents=list(DOCS),
                    links=links(retriever.id, DocStage.RETRIEVED, (0, 1, 2), [0.91, 0.82, 0.73])),
        CapturedRun(run=reranker, documents=[DOCS[i] for i in prompt_docs],
                    links=links(reranker.id, DocStage.RERANKED, prompt_docs, [0.97, 0.41, 0.1],
                                input_ranks=True)),
        CapturedRun(run=llm, llm=_llm_meta(model, provider, cost, template, llm.started_at),
                    documents=[DOCS[i] for i in prompt_docs],
                    links=links(llm.id, DocStage.IN_PROMPT, prompt_docs, [None, None, None])),
        CapturedRun(run=parser),
    ]


def write_children_first(store: SqlStore, records: list[CapturedRun]) -> None:
    """Children before parents, over several batches, as the writer may deliver them."""
    root, retriever, reranker, llm, parser = records
    store.write_batch([llm, parser])
    store.write_batch([reranker])
    store.write_batch([retriever, root])


@pytest.fixture
def store(db_url: str) -> Iterator[SqlStore]:
    opened = open_store(db_url)
    yield opened
    opened.close()


@pytest.fixture
def three_traces(store: SqlStore) -> dict[str, list[CapturedRun]]:
    """A (12:00 UTC on the 10th), B (04:30 UTC on the 11th), C (09:00 UTC on the 11th)."""
    made = {
        "A": rag_trace("trace-A", T_A),
        "B": rag_trace("trace-B", T_B, user="user-2", session="sess-2", model="claude-3-5-haiku",
                       provider="anthropic", cost=COST_B, prompt_docs=(1,)),
        "C": rag_trace("trace-C", T_C, app="other-app", session="sess-3", cost=None,
                       template=TEMPLATE_2, status=RunStatus.ERROR, prompt_docs=(0,)),
    }
    for records in made.values():
        write_children_first(store, records)
    return made


# --- lineage ---------------------------------------------------------------------


def test_lineage_from_any_run_id_returns_the_whole_trace_exactly(store: SqlStore) -> None:
    records = rag_trace("trace-A", T_A)
    write_children_first(store, records)
    written = [record.run for record in records]

    for record in records:
        found = lineage(store.engine, record.run.id)
        assert found.trace_id == "trace-A"
        # Start order; the parser ties with the LLM call and sorts after it by path.
        assert found.runs == written
        assert [r.kind for r in found.runs] == ["chain", "retriever", "reranker", "llm", "parser"]
        assert [r.parent_id for r in found.runs] == [None] + ["trace-A"] * 4


def test_lineage_tree_and_text(store: SqlStore) -> None:
    write_children_first(store, rag_trace("trace-A", T_A))
    found = lineage(store.engine, "trace-A-rr")

    assert found.tree is not None and found.root is not None
    assert found.tree.run.id == "trace-A"
    assert [child.run.id for child in found.tree.children] == [
        "trace-A-ret", "trace-A-rr", "trace-A-llm", "trace-A-a-parser"]
    assert [node.run.id for node in found.tree.walk()] == [r.id for r in found.runs]
    assert [node.run.id for node in found.roots] == ["trace-A"]
    assert found.question == "What is WAL?"
    assert found.answer == "Write-ahead logging."
    assert found.run("trace-A-llm").kind is RunKind.LLM


def test_lineage_documents_by_stage_with_ranks_and_scores(store: SqlStore) -> None:
    write_children_first(store, rag_trace("trace-A", T_A))
    found = lineage(store.engine, "trace-A")

    retrieved = found.documents_at(DocStage.RETRIEVED)
    assert [(d.run_id, d.rank, d.score, d.document_id) for d in retrieved] == [
        ("trace-A-ret", 0, 0.91, "kb/wal.md#0"),
        ("trace-A-ret", 1, 0.82, "kb/wal.md#1"),
        ("trace-A-ret", 2, 0.73, "kb/intro.md#4"),
    ]
    reranked = found.documents_at("reranked")
    assert [(d.rank, d.score, d.input_rank, d.document_id) for d in reranked] == [
        (0, 0.97, 2, "kb/intro.md#4"),
        (1, 0.41, 0, "kb/wal.md#0"),
    ]
    in_prompt = found.documents_at(DocStage.IN_PROMPT)
    assert [(d.run_id, d.rank, d.score, d.content_hash) for d in in_prompt] == [
        ("trace-A-llm", 0, None, DOCS[2].content_hash),
        ("trace-A-llm", 1, None, DOCS[0].content_hash),
    ]
    first = in_prompt[0]
    assert first.content == DOCS[2].content
    assert first.metadata == {"source": "kb/intro.md", "tags": ["basics"]}
    assert len(found.documents) == 7


def test_lineage_llm_metadata_field_by_field(store: SqlStore) -> None:
    records = rag_trace("trace-A", T_A)
    write_children_first(store, records)
    expected = records[3].llm
    assert expected is not None

    found = lineage(store.engine, "trace-A-a-parser")
    [call] = found.llm_calls
    assert (call.run_id, call.trace_id) == ("trace-A-llm", "trace-A")
    meta = call.metadata
    assert meta == expected
    assert meta.cost_metrics is not None and meta.token_usage is not None
    assert meta.cost_metrics.total_cost == Decimal("0.0000345")
    assert str(meta.cost_metrics.cache_read_cost) == "0.0000015"
    assert meta.cost_metrics.price_status is PriceStatus.PRICED
    assert meta.request_timestamp == T_A + timedelta(seconds=0.5)
    assert meta.request_timestamp is not None and meta.request_timestamp.tzinfo is not None
    assert meta.response_timestamp == T_A + timedelta(seconds=0.5, microseconds=812_500)
    assert meta.rate_limit_info is not None
    assert meta.rate_limit_info.requests_reset_at == T_A + timedelta(seconds=1.500001)
    assert meta.token_usage.reasoning_tokens == 5
    assert meta.messages == expected.messages
    assert meta.prompt_template_hash == content_hash(TEMPLATE_1)
    assert found.total_tokens == 150
    assert found.total_cost == COST_A
    assert found.unpriced_calls == 0


def test_lineage_totals_leave_unpriced_calls_out(store: SqlStore) -> None:
    write_children_first(store, rag_trace("trace-C", T_C, cost=None))
    found = lineage(store.engine, "trace-C")
    assert found.total_cost is None
    assert found.unpriced_calls == 1
    assert found.total_tokens == 150


def test_lineage_while_the_root_is_not_stored_yet(store: SqlStore) -> None:
    _root, retriever, _reranker, llm, _parser = rag_trace("trace-A", T_A)
    store.write_batch([llm, retriever])
    found = lineage(store.engine, "trace-A")  # the trace id still names the trace
    assert [r.id for r in found.runs] == ["trace-A-ret", "trace-A-llm"]
    assert [node.run.id for node in found.roots] == ["trace-A-ret", "trace-A-llm"]
    assert found.question is None and found.answer is None


def test_lineage_of_an_unknown_id_names_it(store: SqlStore) -> None:
    with pytest.raises(NotFoundError, match="no-such-run"):
        lineage(store.engine, "no-such-run")


def test_lineage_keeps_json_payload_types(store: SqlStore) -> None:
    records = rag_trace("trace-A", T_A)
    odd = records[0].run.model_copy(update={
        "inputs": {"n": 2**53 + 1, "f": 0.1, "neg": -3, "list": [1, "two", None, {"x": []}]},
        "outputs": "plain text",
        "metadata": {"unicode": "é ☃ 𝄞", "empty": {}},
    })
    store.write_batch([CapturedRun(run=odd)])
    assert lineage(store.engine, "trace-A").runs == [odd]


# --- traces ------------------------------------------------------------------------


def _ids(found: Sequence[TraceSummary | DocumentUsage]) -> list[str]:
    return [item.trace_id for item in found]


def test_traces_newest_first_with_totals(
    store: SqlStore, three_traces: dict[str, list[CapturedRun]]
) -> None:
    found = traces(store.engine)
    assert _ids(found) == ["trace-C", "trace-B", "trace-A"]
    c, b, a = found
    assert (a.name, a.kind, a.status) == ("chain:trace-A", RunKind.CHAIN, RunStatus.OK)
    assert a.started_at == T_A and b.started_at == T_B
    assert (a.app_name, a.app_version, a.user_hash, a.session_id) == (
        "support-bot", "1.4.0", "user-1", "sess-1")
    assert (a.llm_calls, a.total_tokens, a.total_cost, a.unpriced_calls) == (1, 150, COST_A, 0)
    assert b.models == ["claude-3-5-haiku"] and b.total_cost == COST_B
    assert (c.total_cost, c.unpriced_calls, c.status) == (None, 1, RunStatus.ERROR)
    assert a.question == "What is WAL?"
    assert a.duration_ms == 250.0


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"limit": 2}, ["trace-C", "trace-B"]),
        ({"app_name": "support-bot"}, ["trace-B", "trace-A"]),
        ({"user_hash": "user-1"}, ["trace-C", "trace-A"]),
        ({"session_id": "sess-2"}, ["trace-B"]),
        ({"status": "error"}, ["trace-C"]),
        ({"status": RunStatus.OK}, ["trace-B", "trace-A"]),
        ({"model": "claude-3-5-haiku"}, ["trace-B"]),
        ({"model": "gpt-4o-mini"}, ["trace-C", "trace-A"]),
        ({"model": "nope"}, []),
        ({"since": datetime(2024, 3, 11, tzinfo=UTC)}, ["trace-C", "trace-B"]),
        ({"until": datetime(2024, 3, 11)}, ["trace-A"]),  # naive = UTC
        ({"since": T_B, "until": T_C}, ["trace-B"]),  # since inclusive, until exclusive
        ({"since": "2024-03-11T05:00:00+00:00"}, ["trace-C"]),
        ({"app_name": "support-bot", "user_hash": "user-1"}, ["trace-A"]),
    ],
)
def test_traces_filters(
    store: SqlStore, three_traces: dict[str, list[CapturedRun]], filters: dict[str, object],
    expected: list[str],
) -> None:
    assert _ids(traces(store.engine, **filters)) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "bad", [{"limit": 0}, {"limit": True}, {"status": "finished"}, {"since": "yesterday"}]
)
def test_traces_rejects_bad_arguments(store: SqlStore, bad: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        traces(store.engine, **bad)  # type: ignore[arg-type]


# --- answers_using -----------------------------------------------------------------


def _stages(found: list[DocumentUsage]) -> list[tuple[str, DocStage, int, float | None]]:
    return [(use.trace_id, use.stage, use.rank, use.score) for use in found]


def test_answers_using_by_id_and_by_hash(
    store: SqlStore, three_traces: dict[str, list[CapturedRun]]
) -> None:
    # kb/wal.md#0 (DOCS[0]): prompted in A (rank 1) and C (rank 0), only retrieved in B.
    by_id = answers_using(store.engine, "kb/wal.md#0")
    by_hash = answers_using(store.engine, DOCS[0].content_hash)
    assert by_id == by_hash
    assert _stages(by_id) == [
        ("trace-C", DocStage.IN_PROMPT, 0, None),
        ("trace-B", DocStage.RETRIEVED, 0, 0.91),
        ("trace-A", DocStage.IN_PROMPT, 1, None),
    ]
    a = by_id[2]
    assert a.run_ids == ["trace-A-llm", "trace-A-ret", "trace-A-rr"]
    assert (a.question, a.answer, a.started_at) == ("What is WAL?", "Write-ahead logging.", T_A)
    assert (a.document_id, a.content_hash) == ("kb/wal.md#0", DOCS[0].content_hash)


def test_answers_using_stage_reached_is_the_highest(
    store: SqlStore, three_traces: dict[str, list[CapturedRun]]
) -> None:
    # kb/wal.md#1 (DOCS[1]): reranked and prompted only in B.
    assert _stages(answers_using(store.engine, "kb/wal.md#1")) == [
        ("trace-C", DocStage.RETRIEVED, 1, 0.82),
        ("trace-B", DocStage.IN_PROMPT, 0, None),
        ("trace-A", DocStage.RETRIEVED, 1, 0.82),
    ]
    assert answers_using(store.engine, "kb/unknown.md") == []
    with pytest.raises(ConfigError):
        answers_using(store.engine, "")


@pytest.mark.parametrize("links_per_trace", [10, 1], ids=["read-then-cut", "chosen-in-sql"])
def test_answers_using_limit_keeps_the_newest_traces(
    store: SqlStore, three_traces: dict[str, list[CapturedRun]],
    monkeypatch: pytest.MonkeyPatch, links_per_trace: int,
) -> None:
    # kb/wal.md#0 has 10 links over the 4 traces below. With 1 link read per wanted
    # trace, every limit under 10 takes the popular-document path (SQL orders the
    # traces); with 10, the links are read and the newest traces kept in Python.
    monkeypatch.setattr(query_documents, "_LINKS_PER_TRACE", links_per_trace)
    # A fourth trace whose root is not stored yet: it sorts after every rooted trace.
    rootless = rag_trace("trace-D", T_C + timedelta(days=1))[1:]
    store.write_batch(rootless)
    everything = answers_using(store.engine, "kb/wal.md#0")
    assert _ids(everything) == ["trace-C", "trace-B", "trace-A", "trace-D"]
    for limit in (1, 2, 3, 4, 10):
        assert answers_using(store.engine, "kb/wal.md#0", limit=limit) == everything[:limit]
    newest = answers_using(store.engine, DOCS[0].content_hash, limit=1)[0]
    assert (newest.trace_id, newest.question, newest.started_at) == ("trace-C", "What is WAL?", T_C)
    for bad in (0, -1, True, 1.5, "2"):
        with pytest.raises(ConfigError, match="limit"):
            answers_using(store.engine, "kb/wal.md#0", limit=bad)  # type: ignore[arg-type]


def _plan(store: SqlStore, stmt: sa.Executable) -> str:
    """The query plan of ``stmt``; on PostgreSQL with sequential scans priced out.

    Tiny test tables make a scan the cheapest plan on PostgreSQL; with scans priced
    out, the planner still scans unless an index can answer the query.
    """
    with store.engine.connect() as conn:
        sql = str(stmt.compile(conn, compile_kwargs={"literal_binds": True}))
        if store.dialect == "sqlite":
            return "\n".join(row[-1] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}"))
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        return "\n".join(row[0] for row in conn.exec_driver_sql(f"EXPLAIN {sql}"))


def test_answers_using_is_an_index_lookup(store: SqlStore) -> None:
    write_children_first(store, rag_trace("trace-A", T_A))
    plan = _plan(store, links_statement("kb/wal.md#0"))
    if store.dialect == "sqlite":
        steps = [step for step in plan.splitlines() if "document_links" in step]
        assert len(steps) == 2, plan
        assert all(step.startswith("SEARCH") and "INDEX" in step for step in steps), plan
    else:
        assert "Seq Scan" not in plan, plan
    assert "ix_document_links_document_id" in plan, plan
    assert "ix_document_links_content_hash" in plan, plan


def test_recent_traces_read_the_roots_index_without_sorting(store: SqlStore) -> None:
    write_children_first(store, rag_trace("trace-A", T_A))
    for filters in ({}, {"since": T_A, "until": T_C}):
        plan = _plan(store, roots_statement(limit=20, **filters))
        assert "ix_runs_roots_started_at" in plan, plan
        assert "TEMP B-TREE" not in plan and "Sort" not in plan, plan


# --- usage -------------------------------------------------------------------------


def _usage(store: SqlStore, group_by: object, **kw: object) -> list[tuple[object, ...]]:
    rows = usage(store.engine, group_by=group_by, **kw)  # type: ignore[arg-type]
    return [(tuple(row.group.values()), row.calls, row.total_tokens, row.total_cost,
             row.priced_calls, row.unpriced_calls) for row in rows]


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("model", [(("claude-3-5-haiku",), 1, 150, COST_B, 1, 0),
                   (("gpt-4o-mini",), 2, 300, COST_A, 1, 1)]),
        ("provider", [(("anthropic",), 1, 150, COST_B, 1, 0),
                      (("openai",), 2, 300, COST_A, 1, 1)]),
        ("app_name", [(("other-app",), 1, 150, None, 0, 1),
                      (("support-bot",), 2, 300, COST_A + COST_B, 2, 0)]),
        ("user", [(("user-1",), 2, 300, COST_A, 1, 1), (("user-2",), 1, 150, COST_B, 1, 0)]),
        ("session", [(("sess-1",), 1, 150, COST_A, 1, 0), (("sess-2",), 1, 150, COST_B, 1, 0),
                     (("sess-3",), 1, 150, None, 0, 1)]),
        ("day", [(("2024-03-10",), 1, 150, COST_A, 1, 0),
                 (("2024-03-11",), 2, 300, COST_B, 1, 1)]),
        ("template", sorted([((content_hash(TEMPLATE_1),), 2, 300, COST_A + COST_B, 2, 0),
                             ((content_hash(TEMPLATE_2),), 1, 150, None, 0, 1)])),
        ([], [((), 3, 450, COST_A + COST_B, 2, 1)]),
    ],
)
def test_usage_by_each_key(
    store: SqlStore, three_traces: dict[str, list[CapturedRun]], key: object,
    expected: list[tuple[object, ...]],
) -> None:
    assert _usage(store, key) == expected


def test_usage_counts_every_token_kind_and_keeps_decimal_exact(
    store: SqlStore, three_traces: dict[str, list[CapturedRun]]
) -> None:
    [row] = usage(store.engine, group_by=())
    assert (row.input_tokens, row.output_tokens, row.total_tokens) == (360, 90, 450)
    assert (row.cache_read_tokens, row.cache_creation_tokens, row.reasoning_tokens) == (60, 12, 15)
    assert isinstance(row.total_cost, Decimal)
    assert row.total_cost == Decimal("0.0001345001")


def test_usage_groups_by_several_keys_within_a_time_range(
    store: SqlStore, three_traces: dict[str, list[CapturedRun]]
) -> None:
    assert _usage(store, "day, model", since=datetime(2024, 3, 11, tzinfo=UTC)) == [
        (("2024-03-11", "claude-3-5-haiku"), 1, 150, COST_B, 1, 0),
        (("2024-03-11", "gpt-4o-mini"), 1, 150, None, 0, 1),
    ]
    assert _usage(store, ["provider"], until=T_A) == []
    rows = usage(store.engine, group_by=["user", "session"], until=T_B)
    assert [row.group for row in rows] == [{"user": "user-1", "session": "sess-1"}]


def test_usage_puts_missing_group_values_last(store: SqlStore) -> None:
    records = rag_trace("trace-A", T_A)
    write_children_first(store, records)
    llm = records[3]
    assert llm.llm is not None
    no_template = llm.llm.model_copy(update={"prompt_template_hash": None})
    store.write_batch([llm.model_copy(update={
        "run": llm.run.model_copy(update={"id": "trace-A-llm2"}), "llm": no_template,
        "links": [],
    })])
    assert [row.group["template"] for row in usage(store.engine, group_by="template")] == [
        content_hash(TEMPLATE_1), None]


def test_usage_rejects_unknown_keys(store: SqlStore) -> None:
    with pytest.raises(ConfigError, match=r"'colour'.*model, provider"):
        usage(store.engine, group_by=["model", "colour"])


@pytest.mark.postgres
def test_timestamps_and_days_ignore_the_session_time_zone(pg_url: str) -> None:
    url = f"{pg_url}{quote(' -ctimezone=America/New_York')}"
    with open_store(url) as store:
        write_children_first(store, rag_trace("trace-B", T_B))
        assert [row.group for row in usage(store.engine, group_by="day")] == [
            {"day": "2024-03-11"}]
        [summary] = traces(store.engine)
        assert summary.started_at == T_B and summary.started_at.tzinfo == UTC
        assert _ids(traces(store.engine, until=datetime(2024, 3, 11, 4, 30))) == []


def test_lineage_result_is_a_model_that_serialises(store: SqlStore) -> None:
    write_children_first(store, rag_trace("trace-A", T_A))
    found = lineage(store.engine, "trace-A")
    again = Lineage.model_validate_json(found.model_dump_json())
    assert again == found


def test_queries_see_rows_written_through_any_engine(store: SqlStore, db_url: str) -> None:
    write_children_first(store, rag_trace("trace-A", T_A))
    other = open_store(db_url)
    try:
        assert _ids(traces(other.engine)) == ["trace-A"]
        with other.engine.connect() as conn:
            assert conn.execute(sa.text("select count(*) from runs")).scalar_one() == 5
    finally:
        other.close()
