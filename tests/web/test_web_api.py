"""The web view's JSON API (/api/v1) against the Python API, on a database the demo's
LangChain and LlamaIndex pipelines filled; and that the view never writes."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette", reason="the web view needs the ui extra (ragtrail[ui])")

import sqlalchemy as sa
from starlette.testclient import TestClient
from web_support import DemoIds, demo_database

from ragtrail import Trail, report
from ragtrail.errors import StoreUnavailableError
from ragtrail.schemas import DocStage, RunKind
from ragtrail.web import create_app


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, DemoIds]:
    return demo_database(tmp_path_factory)


@pytest.fixture(scope="module")
def trail(demo: tuple[str, DemoIds]) -> Iterator[Trail]:
    with Trail(demo[0], background=False) as opened:
        yield opened


@pytest.fixture(scope="module")
def client(demo: tuple[str, DemoIds]) -> TestClient:
    return TestClient(create_app(demo[0]))


def _ids(rows: list[dict[str, Any]]) -> list[str]:
    return [row["trace_id"] for row in rows]


def test_traces_lists_what_trail_traces_lists(client: TestClient, trail: Trail) -> None:
    body = client.get("/api/v1/traces?limit=100").json()
    expected = trail.traces(limit=100)
    assert _ids(body["traces"]) == [t.trace_id for t in expected]
    assert body["next_cursor"] is None
    for got, want in zip(body["traces"], expected, strict=True):
        assert got == want.model_dump(mode="json")
        answer = got["answer"]
        root = trail.lineage(want.trace_id)
        if root.answer:
            assert answer and root.answer.startswith(answer.rstrip("…")[:40])


@pytest.mark.parametrize(("query", "kwargs"), [
    ("app=langchain-rag-demo", {"app_name": "langchain-rag-demo"}),
    ("session=demo", {"session_id": "demo"}),
    ("status=error", {"status": "error"}),
    ("model=gpt-4o-mini", {"model": "gpt-4o-mini"}),
])
def test_traces_filters_match_the_python_api(client: TestClient, trail: Trail, query: str,
                                             kwargs: dict[str, Any]) -> None:
    got = _ids(client.get(f"/api/v1/traces?limit=100&{query}").json()["traces"])
    assert got == [t.trace_id for t in trail.traces(limit=100, **kwargs)]
    assert got  # the demo stored some of each


def test_traces_kind_and_text_filters(client: TestClient, trail: Trail, demo: tuple[str, DemoIds]
                                      ) -> None:
    ids = demo[1]
    reranked = _ids(client.get("/api/v1/traces?kind=reranker&limit=100").json()["traces"])
    assert {ids.langchain, ids.llamaindex, ids.xss} <= set(reranked)
    for trace_id in reranked:
        assert any(run.kind is RunKind.RERANKER for run in trail.lineage(trace_id).runs)
    assert ids.secret not in reranked
    found = _ids(client.get("/api/v1/traces?q=CHECKPOINT&limit=100").json()["traces"])
    assert ids.langchain_second in found and ids.langchain not in found
    for trace_id in found:
        root = trail.lineage(trace_id).root
        assert root is not None and "checkpoint" in f"{root.inputs} {root.outputs}".lower()
    # LIKE wildcards are matched literally
    assert client.get("/api/v1/traces?q=%25_%25").json()["traces"] == []


def test_cursor_pagination_walks_every_trace_once(client: TestClient, trail: Trail) -> None:
    seen: list[str] = []
    url = "/api/v1/traces?limit=2"
    pages = 0
    while True:
        body = client.get(url).json()
        seen += _ids(body["traces"])
        pages += 1
        if body["next_cursor"] is None:
            break
        url = f"/api/v1/traces?limit=2&cursor={body['next_cursor']}"
    assert seen == [t.trace_id for t in trail.traces(limit=1000)]
    assert pages == (len(seen) + 1) // 2


@pytest.mark.parametrize("query", ["status=bogus", "limit=0", "limit=x", "cursor=not-a-cursor",
                                   "since=yesterday-ish", "kind=spaceship"])
def test_bad_trace_filters_are_400_json(client: TestClient, query: str) -> None:
    response = client.get(f"/api/v1/traces?{query}")
    assert response.status_code == 400
    assert response.json()["status"] == 400 and response.json()["error"]


def _check_detail(body: dict[str, Any], trail: Trail, trace_id: str) -> None:
    lineage = trail.lineage(trace_id)
    assert body["trace_id"] == lineage.trace_id
    summary = body["trace"]
    assert summary["question"] == lineage.question and summary["answer"] == lineage.answer
    assert summary["total_tokens"] == lineage.total_tokens
    assert (Decimal(summary["total_cost"]) if summary["total_cost"] is not None else None) == \
        lineage.total_cost
    assert summary["unpriced_calls"] == lineage.unpriced_calls
    runs = {run.id: run for run in lineage.runs}
    assert sorted(r["id"] for r in body["runs"]) == sorted(runs)
    for row in body["runs"]:
        run = runs[row["id"]]
        assert (row["parent_id"], row["kind"], row["name"], row["status"]) == (
            run.parent_id, run.kind.value, run.name, run.status.value)
        assert row["duration_ms"] == run.duration_ms
        assert row["offset_ms"] >= 0
        parent = row["parent_id"]
        if parent in runs:  # the tree order puts a parent before its children
            assert [r["id"] for r in body["runs"]].index(parent) < \
                [r["id"] for r in body["runs"]].index(row["id"])
    calls = {call.run_id: call for call in lineage.llm_calls}
    assert [c["run_id"] for c in body["llm_calls"]] == [c.run_id for c in lineage.llm_calls]
    for row in body["llm_calls"]:
        meta = calls[row["run_id"]].metadata
        assert row["llm_metadata"] == meta.model_dump(mode="json", exclude_none=True)
        assert row["provider_model"] == meta.provider_model
        if meta.token_usage is not None:
            assert row["input_tokens"] == meta.token_usage.input_tokens
            assert row["output_tokens"] == meta.token_usage.output_tokens
    for stage in DocStage:
        want = [(u.run_id, u.document_id, u.content_hash, u.rank, u.score)
                for u in lineage.documents_at(stage)]
        got = [(d["run_id"], d["document_id"], d["content_hash"], d["rank"], d["score"])
               for d in body["documents"][stage.value]]
        assert got == want
    for doc in body["documents"]["in_prompt"]:
        assert runs[doc["llm_run_id"]].kind is RunKind.LLM


@pytest.mark.parametrize("which", ["langchain", "llamaindex", "xss", "failed"])
def test_trace_detail_matches_lineage(client: TestClient, trail: Trail,
                                      demo: tuple[str, DemoIds], which: str) -> None:
    trace_id = getattr(demo[1], which)
    response = client.get(f"/api/v1/traces/{trace_id}/detail")
    assert response.status_code == 200
    body = response.json()
    _check_detail(body, trail, trace_id)
    if which in ("langchain", "llamaindex"):
        assert body["documents"]["in_prompt"] and body["llm_calls"]
        meta = body["llm_calls"][0]["llm_metadata"]
        # the seed-002 structure
        assert meta["provider_model"] == "gpt-4o-mini"
        assert {"input_tokens", "output_tokens", "total_tokens"} <= set(meta["token_usage"])
        assert "total_cost" in meta["cost_metrics"]
    assert [e["id"] for e in body["evaluations"]] == \
        [e.id for e in trail.lineage(trace_id).evaluations]
    if which != "langchain":
        assert body["evaluations"] == []


def test_trace_detail_evaluations_carry_vendor_and_judge(client: TestClient, trail: Trail,
                                                         demo: tuple[str, DemoIds]) -> None:
    body = client.get(f"/api/v1/traces/{demo[1].langchain}/detail").json()
    expected = {e.name: e for e in trail.lineage(demo[1].langchain).evaluations}
    assert {e["name"] for e in body["evaluations"]} == {"faithfulness", "helpful"}
    for got in body["evaluations"]:
        want = expected[got["name"]]
        assert (got["vendor_name"], got["score"], got["label"], got["passed"],
                got["explanation"], got["evaluation_source"]) == (
            want.vendor_name, want.score, want.label, want.passed, want.explanation,
            want.source.value)
        if want.judge is None:
            assert got["llm_metadata"] is None and got["total_tokens"] is None
            continue
        # seed 002: the judge's full metadata, and quick access to tokens and cost
        assert got["vendor_name"] == "Ragas" and got["judge_trace_id"] == want.judge_trace_id
        assert got["llm_metadata"] == want.judge.model_dump(mode="json", exclude_none=True)
        assert got["llm_metadata"]["provider_model"] == "gpt-4o-mini"
        assert want.judge.token_usage is not None and want.judge.cost_metrics is not None
        assert got["input_tokens"] == want.judge.token_usage.input_tokens > 0
        assert got["total_tokens"] == want.judge.token_usage.total_tokens
        assert Decimal(got["evaluation_cost"]) == want.judge.cost_metrics.total_cost
    # the judge's own trace is not listed among the application's traces
    listed = _ids(client.get("/api/v1/traces?limit=100").json()["traces"])
    judge_trace = expected["faithfulness"].judge_trace_id
    assert judge_trace not in listed


def test_evaluations_endpoint_matches_trail_evaluations(client: TestClient, trail: Trail,
                                                        demo: tuple[str, DemoIds]) -> None:
    for query, kwargs in (("", {}), ("vendor=Ragas", {"vendor_name": "Ragas"}),
                          ("source=human", {"source": "human"}),
                          (f"trace={demo[1].langchain}", {"trace_id": demo[1].langchain}),
                          ("judge_model=gpt-4o-mini", {"judge_model": "gpt-4o-mini"})):
        got = client.get(f"/api/v1/evaluations?{query}").json()["evaluations"]
        assert [e["id"] for e in got] == [e.id for e in trail.evaluations(**kwargs)], query
        assert got
    assert client.get("/api/v1/evaluations?source=robot").status_code == 400


def test_trace_detail_of_any_run_is_its_trace(client: TestClient, trail: Trail,
                                              demo: tuple[str, DemoIds]) -> None:
    child = trail.lineage(demo[1].langchain).runs[-1]
    body = client.get(f"/api/v1/traces/{child.id}/detail").json()
    assert body["trace_id"] == demo[1].langchain


def test_unknown_ids_are_404_json(client: TestClient) -> None:
    for path in ("/api/v1/traces/no-such-trace/detail", "/api/v1/documents/no-such-doc/answers",
                 "/api/v1/diff?a=no-such&b=other", "/api/v1/nothing-here"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.json()["status"] == 404


def test_document_answers_match_answers_using(client: TestClient, trail: Trail,
                                              demo: tuple[str, DemoIds]) -> None:
    lineage = trail.lineage(demo[1].langchain)
    use = lineage.documents_at(DocStage.IN_PROMPT)[0]
    for key in (use.content_hash, use.document_id):
        body = client.get(f"/api/v1/documents/{key}/answers").json()
        want = [row.model_dump(mode="json") for row in trail.answers_using(key)]
        assert body["answers"] == want and want
        assert demo[1].langchain in _ids(body["answers"])
    limited = client.get(f"/api/v1/documents/{use.content_hash}/answers?limit=1").json()
    assert limited["answers"] == [r.model_dump(mode="json")
                                  for r in trail.answers_using(use.content_hash, limit=1)]
    assert client.get(f"/api/v1/documents/{use.content_hash}/answers?limit=-1"
                      ).status_code == 400


def test_document_ids_with_slashes_and_colons(client: TestClient, trail: Trail,
                                              demo: tuple[str, DemoIds]) -> None:
    doc = next(u for u in trail.lineage(demo[1].xss).documents
               if u.document_id.startswith("javascript:"))
    body = client.get(f"/api/v1/documents/{doc.document_id}/answers").json()
    assert _ids(body["answers"]) == [demo[1].xss]


@pytest.mark.parametrize("by", [["model"], ["model", "day"], ["provider"], ["app"],
                                ["template"], ["session"]])
def test_usage_matches_trail_usage(client: TestClient, trail: Trail, by: list[str]) -> None:
    query = "&".join(f"by={b}" for b in by)
    body = client.get(f"/api/v1/usage?{query}").json()
    keys = ["app_name" if b == "app" else b for b in by]
    assert body["rows"] == [row.model_dump(mode="json") for row in trail.usage(keys)]
    assert body["rows"]


def test_usage_since_and_bad_group(client: TestClient, trail: Trail) -> None:
    body = client.get("/api/v1/usage?by=model&since=2999-01-01").json()
    assert body["rows"] == []
    response = client.get("/api/v1/usage?by=colour")
    assert response.status_code == 400 and "colour" in response.json()["error"]


def test_diff_matches_ragtrail_diff(client: TestClient, trail: Trail,
                                    demo: tuple[str, DemoIds]) -> None:
    a, b = demo[1].langchain, demo[1].langchain_second
    body = client.get(f"/api/v1/diff?a={a}&b={b}").json()
    rows = report.diff_rows(trail.lineage(a), trail.lineage(b))
    assert [r["field"] for r in body["rows"]] == [r["field"] for r in rows]
    assert [r["same"] for r in body["rows"]] == [r["same"] for r in rows]
    answer = next(r for r in body["rows"] if r["field"] == "answer")
    assert (answer["a"], answer["b"]) == (trail.lineage(a).answer, trail.lineage(b).answer)
    assert client.get(f"/api/v1/diff?a={a}").status_code == 400


def test_sessions_group_turns(client: TestClient, trail: Trail, demo: tuple[str, DemoIds]
                              ) -> None:
    body = client.get("/api/v1/sessions").json()
    by_id = {s["session_id"]: s for s in body["sessions"]}
    turns = trail.traces(limit=100, session_id="demo")
    assert by_id["demo"]["turns"] == len(turns) == 2
    assert by_id["demo"]["total_tokens"] == sum(t.total_tokens for t in turns)
    assert Decimal(by_id["demo"]["total_cost"]) == sum(
        (t.total_cost for t in turns if t.total_cost is not None), Decimal(0))


def _fingerprint(path: Path) -> tuple[str, int]:
    wal = path.with_name(path.name + "-wal")
    return (hashlib.sha256(path.read_bytes()).hexdigest(),
            wal.stat().st_size if wal.exists() else 0)


def test_the_view_never_writes(demo: tuple[str, DemoIds], tmp_path: Path) -> None:
    url, ids = demo
    path = Path(url.removeprefix("sqlite:///"))
    before = _fingerprint(path)
    # Audit lines are the view's one write, through a connection of their own
    # (tests/governance/test_governance_audit.py); without them the file is untouched.
    app = create_app(url, audit=False)
    client = TestClient(app)
    for page in ("/traces", f"/traces/{ids.langchain}", f"/traces/{ids.langchain}/lineage",
                 "/usage", "/sessions", "/sessions/demo", f"/diff?a={ids.langchain}&b={ids.xss}",
                 "/api/v1/traces", f"/api/v1/traces/{ids.llamaindex}/detail"):
        assert client.get(page).status_code == 200, page
    assert _fingerprint(path) == before
    with pytest.raises(sa.exc.OperationalError, match=r"readonly|read-only|read only"), \
            app.state.source.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM runs"))
    assert _fingerprint(path) == before


def test_create_app_errors_and_trail(tmp_path: Path, demo: tuple[str, DemoIds],
                                     trail: Trail) -> None:
    with pytest.raises(StoreUnavailableError, match="no ragtrail database"):
        create_app(f"sqlite:///{tmp_path / 'missing.db'}")
    foreign = tmp_path / "foreign.db"
    engine = sa.create_engine(f"sqlite:///{foreign}")
    with engine.begin() as conn:
        conn.execute(sa.text("create table other (x int)"))
    engine.dispose()
    with pytest.raises(StoreUnavailableError, match="no ragtrail tables"):
        create_app(f"sqlite:///{foreign}")
    embedded = TestClient(create_app(trail))
    assert _ids(embedded.get("/api/v1/traces?limit=100").json()["traces"]) == \
        [t.trace_id for t in trail.traces(limit=100)]


@pytest.mark.postgres
def test_postgres_read_only_view(pg_url: str) -> None:
    import rag_demo

    lc, _ = rag_demo.main(pg_url)
    app = create_app(pg_url)
    client = TestClient(app)
    with Trail(pg_url, background=False) as trail:
        _check_detail(client.get(f"/api/v1/traces/{lc}/detail").json(), trail, lc)
        assert _ids(client.get("/api/v1/traces").json()["traces"]) == \
            [t.trace_id for t in trail.traces(limit=50)]
    with pytest.raises(sa.exc.InternalError, match="read-only"), \
            app.state.source.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM runs"))


def test_tool_definitions_and_calls_are_shown(tmp_path: Path) -> None:
    from ragtrail.schemas import LLMMetadata

    url = f"sqlite:///{tmp_path / 'tools.db'}"
    tools = [{"name": "search_docs", "description": "Search <the> docs",
              "parameters": {"type": "object"}}]
    calls = [{"id": "call_1", "name": "search_docs", "arguments": {"query": "WAL"}}]
    top_level = "tools" in LLMMetadata.model_fields  # the agentic branches add these fields
    update = ({"tools": tools, "tool_calls": calls} if top_level
              else {"provider_specific": {"tools": tools, "tool_calls": calls}})
    with Trail(url, background=False) as trail:
        with trail.run("agent", kind="agent") as root, \
                trail.run("model", kind="llm", parent_id=root.id) as llm:
            trail.recorder.update_llm(llm.id, {"provider": "openai",
                                               "provider_model": "gpt-4o-mini", **update})
        trail.flush()
    client = TestClient(create_app(url))
    html = client.get(f"/traces/{root.id}/runs/{llm.id}").text
    assert "Tools offered" in html and "Tool calls" in html
    assert "search_docs" in html and "call_1" in html and "Search &lt;the&gt; docs" in html
    plain = client.get(f"/traces/{root.id}/runs/{root.id}").text
    assert "Tools offered" not in plain


def test_usage_page_folds_one_query_into_each_table(demo: tuple[str, DemoIds], trail: Trail
                                                    ) -> None:
    source = create_app(demo[0]).state.source
    tables, by_day = source.usage_views(None, None)
    for key, rows in tables.items():
        assert rows == trail.usage(["app_name" if key == "app" else key]), key
    assert by_day == trail.usage(["day", "model"])
    assert tables["model"][0].total_tokens > 0


def test_evaluation_badges_match_trail_evaluations(demo: tuple[str, DemoIds], trail: Trail,
                                                   tmp_path: Path) -> None:
    from ragtrail.testing.internals import evaluations_by_trace

    ids = [t.trace_id for t in trail.traces(limit=100)]
    found = evaluations_by_trace(create_app(demo[0]).state.source.engine, ids)
    for trace_id in ids:
        assert [e.id for e in found.get(trace_id, [])] == \
            [e.id for e in trail.evaluations(trace_id)]
    assert found[demo[1].langchain]
    # an evaluation written before its trace was stored counts once the trace is
    url = f"sqlite:///{tmp_path / 'early.db'}"
    with Trail(url, background=False) as early:
        evaluation = early.add_evaluation("run-later", "helpful", score=1.0)
        with early.run("later", run_id="run-later"):
            pass
        early.flush()
        assert [e.id for e in evaluations_by_trace(early.store.engine, ["run-later"])
                .get("run-later", [])] == [evaluation] == [e.id for e in early.evaluations(
                    "run-later")]
