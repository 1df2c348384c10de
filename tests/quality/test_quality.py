"""trail.quality(): completeness figures against what real LangChain and LlamaIndex
pipelines stored (SQLite and PostgreSQL), and against windows with known defects."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from llama_index.core.llms import MockLLM
from quality_support import NOW, Window, store_windows

from lc_support import FakeOpenAIChat, build_rag_chain
from li_support import KeywordReranker, build_index, reset_llamaindex
from ragtrail import Trail
from ragtrail.errors import ConfigError
from ragtrail.schemas import DocStage, RunKind, RunStatus
from ragtrail_langchain import RagtrailCallbackHandler
from ragtrail_llamaindex import instrument, uninstrument


def _fill(url: str) -> dict[str, list[str]]:
    """Two LCEL answers and one failed LCEL call (app lc), one LlamaIndex query (app li)."""
    traces: dict[str, list[str]] = {"lc": [], "li": []}
    with Trail(url, app_name="lc", app_version="2.0") as trail:
        handler = RagtrailCallbackHandler(trail, user_id="u-1", session_id="s-1")
        for question in ("How do readers and a writer share SQLite in WAL mode?",
                         "Which PostgreSQL index serves JSONB containment?"):
            run_id = str(uuid.uuid4())
            build_rag_chain().invoke(question, config={"callbacks": [handler], "run_id": run_id})
            traces["lc"].append(run_id)
        failed = str(uuid.uuid4())
        with pytest.raises(ConnectionError):
            build_rag_chain(model=FakeOpenAIChat(fail_times=5)).invoke(
                "never answered", config={"callbacks": [handler], "run_id": failed})
        traces["lc"].append(failed)
        assert trail.flush(10)
    for _ in reset_llamaindex():
        with Trail(url, app_name="li") as trail:
            li = instrument(trail)
            engine = build_index().as_query_engine(llm=MockLLM(), similarity_top_k=4,
                                                   node_postprocessors=[KeywordReranker(top_n=2)])
            engine.query("how does write ahead logging work in sqlite")
            uninstrument(trail)
            assert trail.flush(10)
            traces["li"].append(li.last_trace_id)
        break
    return traces


def _expected(trail: Trail, trace_ids: list[str]) -> dict[str, Any]:
    """The figures recomputed from the traces' lineage (the public API)."""
    runs, calls, retrievals, answers, grounded = [], [], [], 0, 0
    for trace_id in trace_ids:
        lineage = trail.lineage(trace_id)
        runs += lineage.runs
        calls += lineage.llm_calls
        for run in lineage.runs:
            if run.kind is RunKind.RETRIEVER:
                retrievals.append([d for d in lineage.documents
                                   if d.run_id == run.id and d.stage is DocStage.RETRIEVED])
        if lineage.llm_calls:
            answers += 1
            grounded += bool(lineage.documents_at(DocStage.IN_PROMPT))
    usage = [c for c in calls if c.metadata.token_usage and
             c.metadata.token_usage.total_tokens is not None]
    priced = [c for c in calls if c.metadata.cost_metrics and
              c.metadata.cost_metrics.total_cost is not None]
    with_version = [c for c in calls if c.metadata.response_metadata and
                    c.metadata.response_metadata.model_version]
    with_request = [c for c in calls if c.metadata.response_metadata and
                    c.metadata.response_metadata.request_id]
    return {
        "llm_with_token_usage": (len(usage), len(calls)),
        "llm_priced": (len(priced), len(calls)),
        "llm_with_model_version": (len(with_version), len(calls)),
        "llm_with_request_id": (len(with_request), len(calls)),
        "retrieval_with_scores": (sum(any(d.score is not None for d in docs)
                                      for docs in retrievals), len(retrievals)),
        "answers_grounded": (grounded, answers),
        "runs_error": (sum(r.status is RunStatus.ERROR for r in runs), len(runs)),
        "runs_abandoned": (sum(r.status is RunStatus.ABANDONED for r in runs), len(runs)),
        "traces_with_user": (sum(trail.lineage(t).root.user_hash is not None  # type: ignore[union-attr]
                                 for t in trace_ids), len(trace_ids)),
    }


def test_figures_match_what_langchain_and_llamaindex_stored(db_url: str) -> None:
    traces = _fill(db_url)
    with Trail.open_readonly(db_url) as trail:
        report = trail.quality()
        assert [g.group for g in report.groups] == [{"app_name": "lc"}, {"app_name": "li"}]
        stored = {app: [t.trace_id for t in trail.traces(app_name=app, limit=100)]
                  for app in traces}
        assert set(traces["lc"]) == set(stored["lc"])
        assert set(traces["li"]) <= set(stored["li"])  # and the index's ingestion
        for app, ids in stored.items():
            group = report.group(app_name=app)
            for name, (count, denominator) in _expected(trail, ids).items():
                figure = group.figure(name)
                assert (figure.count, figure.denominator) == (count, denominator), (app, name)
                assert figure.share == (count / denominator if denominator else None)
        lc, li = report.group(app_name="lc"), report.group(app_name="li")
        # What we know of these pipelines, beyond recomputing: the failed LCEL call has
        # no usage and is the example of it; LlamaIndex's MockLLM reports no usage at all.
        failed_llm = [c.run_id for c in trail.lineage(traces["lc"][2]).llm_calls]
        assert lc.figure("llm_with_token_usage").count == 2
        assert set(lc.figure("llm_with_token_usage").example_ids) == set(failed_llm)
        assert lc.figure("runs_error").count >= 2  # the LLM call and the chain above it
        for example in lc.figure("runs_error").example_ids:
            assert trail.lineage(example).trace_id == traces["lc"][2]
        assert lc.figure("answers_grounded").count == 3
        assert li.figure("llm_with_token_usage").count == 0
        assert li.figure("llm_unpriced_no_usage").count == li.figure("llm_priced").denominator
        assert li.figure("answers_grounded").share == 1.0
        assert lc.figure("traces_with_user").share == 1.0
        assert li.figure("traces_with_user").count == 0
        assert set(li.figure("traces_with_user").example_ids) <= set(stored["li"])
        assert li.figure("traces_with_user").example_ids  # traces without a user, to open
        assert sum(lc.schema_versions.values()) == lc.figure("runs_error").denominator


def test_known_defects_are_counted_with_examples(db_url: str) -> None:
    window = Window(start=NOW - timedelta(days=1), count=40, error_share=0.25)
    store_windows(db_url, window)
    with Trail.open_readonly(db_url) as trail:
        group = trail.quality().group(app_name="support")
        assert (group.figure("runs_error").count, group.figure("runs_error").denominator) == (
            20, 120)  # 10 failed traces: their root and their LLM call
        assert group.figure("llm_with_token_usage").count == 30
        assert group.figure("llm_unpriced_no_usage").count == 10
        for example in group.figure("llm_unpriced_no_usage").example_ids:
            call = next(c for c in trail.lineage(example).llm_calls if c.run_id == example)
            assert call.metadata.token_usage is None
        # A window with nothing in it is empty, not zero out of zero.
        assert trail.quality(since=NOW + timedelta(days=1)).groups == []
        assert trail.quality(until=window.start).groups == []


def test_grouping_by_model_and_bad_keys(sqlite_url: str) -> None:
    store_windows(sqlite_url, Window(start=NOW - timedelta(days=2), count=10),
                  Window(start=NOW - timedelta(days=1), count=15, model="gpt-4o", seed=2))
    with Trail.open_readonly(sqlite_url) as trail:
        report = trail.quality(group_by=["model"])
        assert report.group(model="gpt-4o").figure("llm_priced").denominator == 15
        assert report.group(model="gpt-4o-mini").figure("llm_priced").denominator == 10
        # The figures an LLM call's model does not split are reported once.
        assert report.groups[-1].group == {"model": None}
        assert report.groups[-1].figure("runs_error").denominator == 75
        with pytest.raises(ConfigError, match="cannot group quality by 'colour'"):
            trail.quality(group_by="colour")


def test_streamed_calls_are_stored_and_the_ttft_figure_counts_them(db_url: str) -> None:
    """Each adapter stores whether a call streamed; "streamed calls with a time to first
    token" counts among the streamed calls only (a plain call has no first token)."""
    streamed, plain = str(uuid.uuid4()), str(uuid.uuid4())
    with Trail(db_url, app_name="lc") as trail:
        handler = RagtrailCallbackHandler(trail)
        model = FakeOpenAIChat()
        assert "".join(str(chunk.content) for chunk in model.stream(
            "Why WAL?", config={"callbacks": [handler], "run_id": streamed}))
        model.invoke("Why WAL?", config={"callbacks": [handler], "run_id": plain})
        assert trail.flush(10)
    for _ in reset_llamaindex():
        with Trail(db_url, app_name="li") as trail:
            instrument(trail)
            llm = MockLLM(max_tokens=4)
            assert "".join(part.delta or "" for part in llm.stream_complete("why wal then"))
            llm.complete("why wal then")
            uninstrument(trail)
            assert trail.flush(10)
        break
    with Trail.open_readonly(db_url) as trail:
        calls = {app: [c for t in trail.traces(app_name=app, limit=10)
                       for c in trail.lineage(t.trace_id).llm_calls] for app in ("lc", "li")}
        assert trail.lineage(streamed).llm_calls[0].metadata.streamed is True
        assert trail.lineage(plain).llm_calls[0].metadata.streamed is None
        assert sorted(c.metadata.streamed is True for c in calls["li"]) == [False, True]
        report = trail.quality()
        for app in ("lc", "li"):
            figure = report.group(app_name=app).figure("llm_with_ttft")
            assert (figure.count, figure.denominator, figure.example_ids) == (1, 1, []), app
            assert report.group(app_name=app).figure("llm_with_request_id").denominator == 2
