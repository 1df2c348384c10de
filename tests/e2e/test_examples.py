"""Every example runs offline and produces what it says, so examples cannot rot."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
sys.path.insert(0, str(EXAMPLES))

import cost_report  # noqa: E402
import cross_framework  # noqa: E402
import lineage_queries  # noqa: E402
import postgres as postgres_example  # noqa: E402
import rag_demo  # noqa: E402

from ragtrail import Trail  # noqa: E402


def test_demo_runs_both_frameworks(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    lc, li = rag_demo.main(sqlite_url)
    out = capsys.readouterr().out
    assert "LangChain" in out and "LlamaIndex" in out and "in_prompt" in out
    with Trail(sqlite_url, background=False) as trail:
        assert trail.lineage(lc).answer and trail.lineage(li).answer
        assert {d.stage.value for d in trail.lineage(li).documents} == {
            "retrieved", "reranked", "in_prompt"}


def test_demo_runs_on_a_database_left_by_an_earlier_ragtrail(
        sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    from alembic import command

    from ragtrail.store import VERSION_TABLE, head_revision, upgrade_database
    from ragtrail.testing.internals import store_migrate

    upgrade_database(sqlite_url)
    engine = sa.create_engine(sqlite_url)
    with engine.begin() as conn:
        command.downgrade(store_migrate._config(conn), "0003")  # a ./ragtrail.db from before
    rag_demo.main(sqlite_url)
    with engine.connect() as conn:
        version = conn.execute(sa.text(f"select * from {VERSION_TABLE}")).scalar()
    engine.dispose()
    assert version == head_revision()
    assert "LlamaIndex" in capsys.readouterr().out


def test_cross_framework_is_one_trace(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    trace_id = cross_framework.main(sqlite_url)
    with Trail(sqlite_url, background=False) as trail:
        lineage = trail.lineage(trace_id)
    frameworks = {run.framework.value for run in lineage.runs}
    assert frameworks == {"langchain", "llamaindex"}
    by_id = {run.id: run for run in lineage.runs}
    ask = next(run for run in lineage.runs if run.name == "ask_llamaindex")
    query = next(run for run in lineage.runs if run.name.endswith("query"))
    assert query.parent_id == ask.id
    assert {run.trace_id for run in lineage.runs} == {trace_id}
    assert all(run.parent_id in by_id for run in lineage.runs if run.parent_id)
    assert "retriever" in capsys.readouterr().out


def test_lineage_queries_example(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    found = lineage_queries.main(sqlite_url)
    assert found["trace_ids"][0] in found["answers_using"]
    assert found["alice"] == 2
    out = capsys.readouterr().out
    assert "in prompt #1:" in out and "#0" not in out and "(rank 0)" not in out


def test_ranks_are_one_based_in_the_demo_and_the_cli(
        sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """One convention for people: the demo, `ragtrail show`/`lineage`/`documents` count
    from 1; the stored records, the Python API and --json keep rank 0 for the first."""
    import json
    import re

    from click.testing import CliRunner

    from ragtrail.cli import cli

    lc, _ = rag_demo.main(sqlite_url)
    demo = capsys.readouterr().out
    top = re.search(r"retrieved:\n  #(\d+) (\S+)", demo)
    assert top is not None and top.group(1) == "1"
    with Trail(sqlite_url, background=False) as trail:
        first = trail.lineage(lc).documents_at("retrieved")[0]
    assert first.rank == 0 and first.document_id == top.group(2)  # the API: 0-based

    def cli_out(*args: str) -> str:
        result = CliRunner(env={"COLUMNS": "200"}).invoke(cli, [*args, "--db", sqlite_url])
        assert result.exit_code == 0, result.output
        return result.stdout

    assert "[retrieved #1] score=" in cli_out("show", lc)
    assert "#0]" not in cli_out("show", lc)
    lineage_rows = [line.split() for line in cli_out("lineage", lc).splitlines()]
    assert ["1", f"{first.score:.4f}", "-", first.document_id] == lineage_rows[
        next(i for i, row in enumerate(lineage_rows) if row[:2] == ["rank", "score"]) + 2][:4]
    documents = cli_out("documents", first.document_id)
    assert re.search(rf"{lc}\s+\S+ \S+\s+in_prompt\s+1\s", documents)  # the furthest stage
    as_json = json.loads(cli_out("documents", first.document_id, "--json"))
    assert [(r["stage"], r["rank"]) for r in as_json if r["trace_id"] == lc] == [("in_prompt", 0)]


def test_cost_report_prices_known_and_override_and_counts_unknown(sqlite_url: str) -> None:
    rows = cost_report.main(sqlite_url)
    gpt_cost, gpt_unpriced = rows["gpt-4o-mini"]
    own_cost, own_unpriced = rows["my-llama-70b"]
    unknown_cost, unknown_unpriced = rows["mystery-model"]
    assert gpt_cost > 0 and gpt_unpriced == 0
    assert own_cost > 0 and own_unpriced == 0
    assert unknown_cost is None and unknown_unpriced == 1
    assert isinstance(own_cost, Decimal)


@pytest.mark.postgres
def test_postgres_example(pg_url: str) -> None:
    trace_id = postgres_example.main(pg_url)
    with Trail(pg_url, background=False) as trail:
        assert trail.lineage(trace_id).total_tokens > 0


@pytest.mark.parametrize("script", ["langchain_rag.py", "llamaindex_rag.py", "cost_report.py"])
def test_scripts_run_from_the_command_line(tmp_path: Path, script: str) -> None:
    done = subprocess.run([sys.executable, str(EXAMPLES / script), str(tmp_path / "x.db")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()
