"""``ragtrail evaluate``, ``evals``, ``usage --evaluations``, and evaluations in
``lineage``, ``show``, ``export``/``import`` and ``purge``.

``evaluate`` drives the real LlamaIndex OpenAI and Anthropic clients against the loopback
provider server, whose verdicts are scripted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from li_support import KeywordReranker, UsageLLM, build_index, reset_llamaindex
from provider_server import (
    ANTHROPIC_MODEL,
    EXPECTED_USAGE,
    OPENAI_MODEL,
    ProviderServer,
    genai_prices_total,
    serve_provider,
)
from ragtrail import Trail
from ragtrail.cli import cli
from ragtrail_llamaindex import instrument, uninstrument

provider = pytest.fixture(name="provider")(serve_provider)
_reset = pytest.fixture(autouse=True)(reset_llamaindex)

QUESTIONS = ("how does write ahead logging help readers?",
             "what does postgresql use so readers never block?")


@pytest.fixture
def db(sqlite_url: str) -> Iterator[tuple[str, list[str]]]:
    """A database holding two LlamaIndex RAG traces."""
    index = build_index()
    with Trail(sqlite_url) as trail:
        handler = instrument(trail)
        engine = index.as_query_engine(llm=UsageLLM(), similarity_top_k=3,
                                       node_postprocessors=[KeywordReranker(top_n=2)])
        ids = []
        for question in QUESTIONS:
            engine.query(question)
            assert handler.last_trace_id is not None
            ids.append(handler.last_trace_id)
        uninstrument(trail)
    yield sqlite_url, ids


def run(*args: str, ok: bool = True) -> Any:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def _cost(api: str) -> Decimal:
    # genai-prices' own price of what the server answers (Anthropic: 1h cache writes at
    # their own rate).
    return genai_prices_total(api, None)


@pytest.mark.parametrize("api", ["openai", "anthropic"])
def test_evaluate_since_with_a_real_client_then_evals_and_usage(
        db: tuple[str, list[str]], provider: ProviderServer, api: str) -> None:
    url, ids = db
    before = json.loads(run("usage", "--by", "provider", "--db", url, "--json").stdout)
    provider.reply_next("YES", "NO")
    model, base = (OPENAI_MODEL, provider.openai_url) if api == "openai" \
        else (ANTHROPIC_MODEL, provider.url)
    out = run("evaluate", "--metric", "faithfulness", "--since", "1d", "--judge", model,
              "--judge-base-url", base, "--db", url, "--json")
    (summary,) = json.loads(out.stdout)
    assert (summary["evaluated"], summary["passed"], summary["failed"], summary["errors"]) == (
        2, 1, 1, 0)
    assert summary["mean_score"] == 0.5
    assert summary["judge_tokens"] == 2 * EXPECTED_USAGE[api].total_tokens
    assert Decimal(summary["judge_cost"]) == 2 * _cost(api)
    assert len(provider.requests) == 2 and {r.api for r in provider.requests} == {api}
    listed = json.loads(run("evals", "--db", url, "--json").stdout)
    assert sorted(e["trace_id"] for e in listed) == sorted(ids)
    assert {e["vendor_name"] for e in listed} == {"LlamaIndex"}
    assert {e["judge"]["provider"] for e in listed} == {api}
    one = json.loads(run("evals", ids[0], "--db", url, "--json").stdout)
    assert [e["trace_id"] for e in one] == [ids[0]]
    assert json.loads(run("evals", "--vendor", "Ragas", "--db", url, "--json").stdout) == []
    text = run("evals", "--db", url).stdout
    assert "faithfulness" in text and "LlamaIndex" in text
    # at 80 columns every trace id is shown whole (never wrapped or cut)
    assert all(trace_id in text for trace_id in ids), text
    for columns in (60, 80, 100, 120, 140, 160, 200):
        # The judge's cost and tokens are shown whole or left out, never cut.
        shown = CliRunner(env={"COLUMNS": str(columns)}).invoke(
            cli, ["evals", "--db", url], catch_exceptions=False).stdout
        assert "judge c…" not in shown and "judge t…" not in shown, shown
        assert not re.search(r"\$[0-9.]*…", shown), shown
        if "judge cost" in shown:
            assert len(re.findall(r"\$\d+\.\d+(?!…)", shown)) == len(ids), shown
    judges = json.loads(run("usage", "--by", "provider", "--evaluations", "--db", url,
                            "--json").stdout)
    assert [(row["group"]["provider"], Decimal(row["total_cost"])) for row in judges] == [
        (api, 2 * _cost(api))]
    app = json.loads(run("usage", "--by", "provider", "--db", url, "--json").stdout)
    assert app == before  # the judges' calls are not the application's

    traces = json.loads(run("traces", "--db", url, "--json").stdout)
    assert sorted(t["trace_id"] for t in traces) == sorted(ids)


def test_correctness_needs_references_and_uses_them(db: tuple[str, list[str]],
                                                    provider: ProviderServer,
                                                    tmp_path: Path) -> None:
    url, ids = db
    bad = run("evaluate", "--metric", "correctness", ids[0], "--judge", OPENAI_MODEL,
              "--judge-base-url", provider.openai_url, "--db", url, ok=False)
    assert bad.exit_code == 2 and "--reference-file" in bad.output
    references = tmp_path / "refs.json"
    references.write_text(json.dumps({ids[0]: "Readers continue while a writer appends."}))
    provider.reply_next("4.0\nClose to the reference.")
    out = run("evaluate", "--metric", "correctness", ids[0], "--judge", OPENAI_MODEL,
              "--judge-base-url", provider.openai_url, "--reference-file", str(references),
              "--db", url)
    assert "correctness" in out.stdout and "Evaluation summary" in out.stdout
    assert "Readers continue while a writer appends." in json.dumps(provider.requests[0].body)
    (found,) = json.loads(run("evals", ids[0], "--name", "correctness", "--db", url,
                              "--json").stdout)
    assert (found["score"], found["passed"]) == (4.0, True)


def test_either_trace_ids_or_since(db: tuple[str, list[str]]) -> None:
    url, _ = db
    result = run("evaluate", "--metric", "relevancy", "--judge", OPENAI_MODEL, "--db", url,
                 ok=False)
    assert result.exit_code == 2 and "TRACE_ID" in result.output


def test_lineage_show_list_evaluations_and_export_import_carry_them(
        db: tuple[str, list[str]], sqlite_url: str, tmp_path: Path) -> None:
    url, ids = db
    with Trail(url) as trail:
        from test_evaluations import _judged

        judged = _judged(trail, ids[0], [("openai", OPENAI_MODEL, {
            "input_tokens": 10, "output_tokens": 2, "total_tokens": 12})])
        trail.add_evaluation(ids[0], "helpful", passed=True, source="human",
                             explanation="to the point")
    shown = run("lineage", ids[0], "--db", url).stdout
    assert "faithfulness" in shown and "helpful" in shown and "to the point" in shown
    tree = run("show", ids[0], "--db", url).stdout
    assert "evaluations" in tree and "helpful: passed" in tree
    assert "faithfulness: 0.9" in tree and OPENAI_MODEL in tree
    exported = tmp_path / "out.jsonl"
    run("export", ids[0], "--db", url, "-o", str(exported))
    target = f"sqlite:///{tmp_path / 'copy.db'}"
    run("import", str(exported), "--db", target)
    with Trail(url) as source, Trail(target) as copy:
        assert copy.evaluations(ids[0]) == source.evaluations(ids[0])
        assert judged.judge_trace_id is not None
        assert copy.lineage(judged.judge_trace_id).llm_calls == source.lineage(
            judged.judge_trace_id).llm_calls
    result = run("purge", "--older-than", "0s", "--yes", "--db", target)
    assert "deleted 2 traces" in result.stdout  # the evaluated trace and its judge's
    with Trail(target) as copy:
        assert copy.evaluations() == []
        assert copy.traces(include_evaluations=True) == []


def test_evals_source_choice_matches_the_enum() -> None:
    from ragtrail.query import EvaluationSource
    from ragtrail.testing.internals import SOURCES

    assert tuple(s.value for s in EvaluationSource) == SOURCES
