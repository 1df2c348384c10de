"""The `ragtrail` command line, end to end, on a database filled by real LangChain runs.

Each command's output is checked, not only its exit status.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from lc_support import FakeOpenAIChat, build_rag_chain
from ragtrail import Trail
from ragtrail.cli import cli
from ragtrail.schemas import content_hash
from ragtrail.testing.internals import records_of
from ragtrail_langchain import RagtrailCallbackHandler


class DB:
    """The filled database: its URL and the ids the tests look for."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.first = ""
        self.second = ""
        self.failed = ""
        self.llamaindex = ""


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DB]:
    url = f"sqlite:///{tmp_path_factory.mktemp('cli') / 'cli.db'}"
    filled = DB(url)
    with Trail(url, app_name="cli-app", app_version="2.0") as trail:
        handler = RagtrailCallbackHandler(trail, user_id="u-42", session_id="s-1")
        filled.first = str(uuid.uuid4())
        build_rag_chain().invoke("How do readers and a writer share SQLite in WAL mode?",
                                 config={"callbacks": [handler], "run_id": filled.first})
        filled.second = str(uuid.uuid4())
        hot = FakeOpenAIChat(temperature=0.9, seed=99)
        build_rag_chain(model=hot).invoke("Which PostgreSQL index serves JSONB containment?",
                                          config={"callbacks": [handler],
                                                  "run_id": filled.second})
        filled.failed = str(uuid.uuid4())
        with pytest.raises(ConnectionError):
            build_rag_chain(model=FakeOpenAIChat(fail_times=5)).invoke(
                "never answered", config={"callbacks": [handler], "run_id": filled.failed})
        filled.llamaindex = _llamaindex_query(trail)
        assert trail.flush(10)
    yield filled


def _llamaindex_query(trail: Trail) -> str:
    """One real LlamaIndex query engine run (the example's offline engine)."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
    import llamaindex_rag

    from ragtrail_llamaindex import instrument, uninstrument

    engine = llamaindex_rag.build_query_engine()  # index build before: no embedding traces
    handler = instrument(trail)
    try:
        engine.query(llamaindex_rag.QUESTION)
    finally:
        uninstrument(trail)
    assert handler.last_trace_id
    return handler.last_trace_id


def run(*args: str, ok: bool = True, columns: int | None = None) -> Any:
    env = {"COLUMNS": str(columns)} if columns is not None else None
    result = CliRunner(env=env).invoke(cli, list(args), catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def as_json(*args: str) -> Any:
    return json.loads(run(*args, "--json").stdout)


def test_traces_lists_newest_first_with_filters(db: DB) -> None:
    rows = as_json("traces", "--db", db.url)
    assert [r["trace_id"] for r in rows] == [db.llamaindex, db.failed, db.second, db.first]
    assert rows[3]["app_name"] == "cli-app" and rows[3]["total_tokens"] > 0
    assert rows[1]["status"] == "error"
    text = run("traces", "--db", db.url, columns=200).stdout
    assert "cli-app" in text and "How do readers" in text and db.first in text
    assert [r["trace_id"] for r in as_json("traces", "--db", db.url, "--status", "error")] == [
        db.failed]
    assert len(as_json("traces", "--db", db.url, "--user", "u-42")) == 3
    assert as_json("traces", "--db", db.url, "--user", "someone-else") == []
    assert len(as_json("traces", "--db", db.url, "--app", "cli-app", "--since", "1h")) == 4
    assert as_json("traces", "--db", db.url, "--until", "2000-01-01") == []
    assert len(as_json("traces", "--db", db.url, "--model", "gpt-4o-mini")) == 4


def test_show_prints_the_tree(db: DB) -> None:
    text = run("show", db.first, "--db", db.url).stdout
    for expected in ("chain RunnableSequence", "retriever", "reranker rerank", "prompt",
                     "llm FakeOpenAIChat", "parser StrOutputParser", "model=gpt-4o-mini",
                     "[retrieved #1]", "[reranked #1]", "[in_prompt #1]"):
        assert expected in text, expected
    failed = run("show", db.failed, "--db", db.url).stdout
    assert "error" in failed and "ConnectionError" in failed
    li = run("show", db.llamaindex, "--db", db.url).stdout
    for expected in ("chain RetrieverQueryEngine.query", "retriever VectorIndexRetriever.retrieve",
                     "reranker", "llm OfflineLLM.complete", "[in_prompt #1]"):
        assert expected in li, expected


def test_lineage_and_documents_for_a_llamaindex_answer(db: DB) -> None:
    data = as_json("lineage", db.llamaindex, "--db", db.url)
    assert data["question"].startswith("How do readers")
    in_prompt = [d for d in data["documents"] if d["stage"] == "in_prompt"]
    assert in_prompt and in_prompt[0]["metadata"]["ref_doc_id"]
    rows = as_json("documents", in_prompt[0]["document_id"], "--db", db.url)
    assert [(r["trace_id"], r["stage"]) for r in rows] == [(db.llamaindex, "in_prompt")]


def test_lineage_answers_what_produced_the_answer(db: DB) -> None:
    text = run("lineage", db.first, "--db", db.url).stdout
    for expected in ("Question: How do readers and a writer share SQLite in WAL mode?",
                     "Documents retrieved", "Documents reranked", "Documents in_prompt",
                     "Question: {question}", "openai / gpt-4o-mini", '"temperature": 0.2',
                     "tokens", "$0.0", "latency", "Answer: The context answers:"):
        assert expected in text, expected
    data = as_json("lineage", db.first, "--db", db.url)
    assert data["trace_id"] == db.first
    stages = {d["stage"] for d in data["documents"]}
    assert stages == {"retrieved", "reranked", "in_prompt"}


def test_documents_lists_answers_using_a_document(db: DB) -> None:
    lineage = as_json("lineage", db.first, "--db", db.url)
    in_prompt = next(d for d in lineage["documents"] if d["stage"] == "in_prompt")
    rows = as_json("documents", in_prompt["document_id"], "--db", db.url)
    assert db.first in [r["trace_id"] for r in rows]
    assert {r["stage"] for r in rows if r["trace_id"] == db.first} == {"in_prompt"}
    by_hash = as_json("documents", in_prompt["content_hash"], "--db", db.url)
    assert {r["trace_id"] for r in by_hash} == {r["trace_id"] for r in rows}
    text = run("documents", in_prompt["document_id"], "--db", db.url).stdout
    assert "in_prompt" in text
    missing = run("documents", "no-such-doc", "--db", db.url, ok=False)
    assert missing.exit_code == 1 and "no stored answer used document" in missing.stderr
    assert len(rows) >= 2  # the same document reached several answers
    newest = as_json("documents", in_prompt["document_id"], "--db", db.url, "--limit", "1")
    assert newest == rows[:1]
    bad = run("documents", in_prompt["document_id"], "--db", db.url, "--limit", "0", ok=False)
    assert bad.exit_code == 2 and "--limit" in bad.stderr


def test_documents_shows_each_answers_stage_and_filters_by_min_stage(db: DB) -> None:
    """Every trace that used the document, with the highest stage it reached there (the
    stage column stays on a narrow terminal); --min-stage in_prompt keeps the answers
    whose prompt it reached."""
    lineage = as_json("lineage", db.first, "--db", db.url)
    in_prompt = {d["document_id"] for d in lineage["documents"] if d["stage"] == "in_prompt"}
    dropped = next(d["document_id"] for d in lineage["documents"]
                   if d["document_id"] not in in_prompt)
    rows = as_json("documents", dropped, "--db", db.url)
    assert [r["stage"] for r in rows if r["trace_id"] == db.first] == ["retrieved"]
    text = run("documents", dropped, "--db", db.url, columns=60).stdout
    assert "stage" in text and "retrieved" in text, text
    reached = as_json("documents", dropped, "--db", db.url, "--min-stage", "in_prompt")
    assert db.first not in [r["trace_id"] for r in reached]
    assert {r["trace_id"] for r in reached} == {r["trace_id"] for r in rows
                                                if r["stage"] == "in_prompt"}
    kept = sorted(in_prompt)[0]
    reached = as_json("documents", kept, "--db", db.url, "--min-stage", "in_prompt")
    assert db.first in [r["trace_id"] for r in reached]
    assert {r["stage"] for r in reached} == {"in_prompt"}


def test_usage_groups_and_counts_unpriced_apart(db: DB) -> None:
    rows = as_json("usage", "--db", db.url, "--by", "model")
    assert [r["group"]["model"] for r in rows] == ["gpt-4o-mini"]
    # The failed call reported no usage: counted apart, never added as $0.
    assert (rows[0]["calls"], rows[0]["priced_calls"], rows[0]["unpriced_calls"]) == (4, 3, 1)
    assert float(rows[0]["total_cost"]) > 0
    day = as_json("usage", "--db", db.url, "--by", "day", "--by", "app")
    assert day[0]["group"]["day"] == datetime.now(timezone.utc).strftime("%Y-%m-%d")
    assert day[0]["group"]["app_name"] == "cli-app"
    templates = as_json("usage", "--db", db.url, "--by", "template")
    assert len(templates) == 2 and all(t["group"]["template"] for t in templates)
    text = run("usage", "--db", db.url, "--by", "model").stdout
    assert "gpt-4o-mini" in text and "unpriced calls" in text


def test_diff_explains_what_changed(db: DB) -> None:
    rows = {r["field"]: r for r in as_json("diff", db.first, db.second, "--db", db.url)}
    assert not rows["parameters"]["same"]
    assert rows["parameters"]["a"]["temperature"] == 0.2
    assert rows["parameters"]["b"]["temperature"] == 0.9
    assert rows["prompt template hash"]["same"] and rows["model"]["same"]
    assert not rows["question"]["same"] and not rows["answer"]["same"]
    assert rows["documents retrieved (in order)"]["a"] != rows["documents retrieved (in order)"]["b"]
    text = run("diff", db.first, db.second, "--db", db.url).stdout
    assert "≠" in text and "parameters" in text


def test_replay_prints_the_exact_call(db: DB) -> None:
    spec = json.loads(run("replay", db.second, "--db", db.url).stdout)
    assert spec["provider"] == "openai" and spec["model"] == "gpt-4o-mini"
    assert spec["parameters"]["seed"] == 99 and spec["parameters"]["temperature"] == 0.9
    assert [m["role"] for m in spec["messages"]][-1] in ("user", "human")
    assert "Which PostgreSQL index" in json.dumps(spec["messages"])


def test_export_import_round_trip_is_lossless(db: DB, tmp_path: Path, db_url: str) -> None:
    out = tmp_path / "traces.jsonl"
    run("export", "--db", db.url, "-o", str(out))
    lines = out.read_text().splitlines()
    assert len(lines) > 10 and all(json.loads(line)["schema_version"] for line in lines)
    run("import", str(out), "--db", db_url)
    run("import", str(out), "--db", db_url)  # idempotent
    with Trail(db.url, background=False) as source, Trail(db_url, background=False) as target:
        for trace in (db.first, db.second, db.failed, db.llamaindex):
            assert target.lineage(trace).model_dump() == source.lineage(trace).model_dump()
            again = [r.model_dump() for r in records_of(target.lineage(trace))]
            assert again == [r.model_dump() for r in records_of(source.lineage(trace))]


def test_import_rejects_garbage_with_a_line_number(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"schema_version": "3.0"}\nnot json\n')
    result = run("import", str(bad), "--db", f"sqlite:///{tmp_path / 'x.db'}", ok=False)
    assert result.exit_code == 1 and "line 1" in result.stderr


def test_purge_removes_old_traces_only(tmp_path: Path, db: DB) -> None:
    exported = tmp_path / "all.jsonl"
    run("export", db.first, "--db", db.url, "-o", str(exported))
    old = []
    for line in exported.read_text().splitlines():
        record = json.loads(line)
        for key in ("started_at", "ended_at"):
            when = datetime.fromisoformat(record["run"][key].replace("Z", "+00:00"))
            record["run"][key] = (when - timedelta(days=60)).isoformat()
        for key in ("id", "trace_id", "parent_id"):
            if record["run"][key]:
                record["run"][key] = "old-" + record["run"][key]
        if record.get("llm"):
            record["llm"]["request_timestamp"] = record["run"]["started_at"]
        for link in record["links"]:
            link["run_id"], link["trace_id"] = "old-" + link["run_id"], "old-" + link["trace_id"]
        old.append(json.dumps(record))
    target = f"sqlite:///{tmp_path / 'purge.db'}"
    (tmp_path / "old.jsonl").write_text("\n".join(old))
    run("import", str(tmp_path / "old.jsonl"), "--db", target)
    run("import", str(exported), "--db", target)
    result = run("purge", "--older-than", "30d", "--yes", "--db", target)
    assert "deleted 1 traces" in result.stdout
    assert [t["trace_id"] for t in as_json("traces", "--db", target)] == [db.first]


def test_db_upgrade_and_schema(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    first = run("db", "upgrade", url).stdout
    assert "schema revision" in first
    assert run("db", "upgrade", "--db", url).stdout == first
    assert json.loads(run("schema").stdout)["schema_version"] == "3.0"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["lineage", "no-such-run"], "no-such-run"),
        (["show", "no-such-run"], "no-such-run"),
        (["traces", "--db", "nosuchdb://x"], "nosuchdb"),
        (["traces", "--db", "sqlite:////nonexistent/dir/x.db"], "no ragtrail database"),
        (["usage", "--since", "yesterday-ish"], "--since"),
    ],
)
def test_errors_are_one_line_and_non_zero(db: DB, args: list[str], message: str) -> None:
    if "--db" not in args:
        args = [*args, "--db", db.url]
    result = run(*args, ok=False)
    assert result.exit_code != 0
    assert message in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_console_script_is_installed(db: DB) -> None:
    script = Path(sys.executable).with_name("ragtrail")
    done = subprocess.run([str(script), "traces", "--db", db.url, "--json"], capture_output=True,
                          text=True, check=True)
    assert db.first in done.stdout
    assert "Usage" in subprocess.run([str(script), "--help"], capture_output=True, text=True,
                                     check=True).stdout
    plain = subprocess.run([str(script), "traces", "--db", db.url], capture_output=True,
                           text=True, check=True).stdout
    assert "\x1b[" not in plain  # no colour codes when not a terminal


def test_content_hash_lookup_matches_schema() -> None:
    assert len(content_hash("x")) == 64


# -- --json on every command (issue 20, point 5) -------------------------------------------


def _leaf_commands() -> dict[str, Any]:
    """Every runnable command, by its full name ("db upgrade"), loaded as `ragtrail` does."""
    import click

    found: dict[str, Any] = {}
    ctx = click.Context(cli)

    def walk(group: Any, prefix: str) -> None:
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            if isinstance(command, click.Group):
                walk(command, f"{prefix}{name} ")
            else:
                found[f"{prefix}{name}"] = command

    walk(cli, "")
    return found


def test_every_command_takes_json() -> None:
    commands = _leaf_commands()
    assert {"traces", "show", "lineage", "documents", "usage", "diff", "replay", "export",
            "import", "purge", "schema", "db upgrade"} <= set(commands)
    for name, command in commands.items():
        assert any("--json" in p.opts for p in command.params), name


def test_every_command_prints_json_that_parses(db: DB, tmp_path: Path) -> None:
    lineage = as_json("lineage", db.first, "--db", db.url)
    document = lineage["documents"][0]["document_id"]
    single = [
        ["traces"], ["show", db.first], ["lineage", db.first], ["documents", document],
        ["usage", "--by", "template"], ["diff", db.first, db.second], ["replay", db.second],
        ["replay", db.first], ["schema"],
    ]
    for command in single:
        args = [*command, "--db", db.url] if command != ["schema"] else command
        json.loads(run(*args, "--json").stdout)  # one JSON document
    exported = run("export", db.first, db.second, "--db", db.url, "--json").stdout
    records = [json.loads(line) for line in exported.splitlines()]  # JSON lines
    assert {r["run"]["trace_id"] for r in records} == {db.first, db.second}
    source = tmp_path / "two.jsonl"
    source.write_text(exported)
    target = f"sqlite:///{tmp_path / 'target.db'}"
    imported = json.loads(run("import", str(source), "--db", target, "--json").stdout)
    assert imported == {"imported": len(records), "database": target.replace(
        "sqlite:", "sqlite+pysqlite:")}
    upgraded = json.loads(run("db", "upgrade", target, "--json").stdout)
    assert upgraded["revision"] and upgraded["database"] == imported["database"]
    purged = json.loads(run("purge", "--older-than", "1d", "--yes", "--db", target,
                            "--json").stdout)
    assert purged["deleted_traces"] == 0 and purged["before"]
    assert {t["trace_id"] for t in as_json("traces", "--db", target)} == {db.first, db.second}


# -- ids a person can copy (issue 20, point 6) ---------------------------------------------


def _ids(db: DB) -> list[str]:
    return [db.first, db.second, db.failed, db.llamaindex]


@pytest.mark.parametrize("columns", [60, 80, 200])
def test_views_fit_the_terminal_and_never_break_an_id(db: DB, columns: int) -> None:
    ids = _ids(db)
    document = as_json("lineage", db.llamaindex, "--db", db.url)["documents"][0]
    outputs = {
        "traces": run("traces", "--db", db.url, columns=columns).stdout,
        "show": run("show", db.llamaindex, "--db", db.url, columns=columns).stdout,
        "lineage": run("lineage", db.llamaindex, "--db", db.url, columns=columns).stdout,
        "documents": run("documents", document["document_id"], "--db", db.url,
                         columns=columns).stdout,
        "usage": run("usage", "--by", "template", "--by", "model", "--db", db.url,
                     columns=columns).stdout,
        "diff": run("diff", db.first, db.llamaindex, "--db", db.url, columns=columns).stdout,
    }
    known = {document["document_id"], *ids}
    for trace_id in ids:  # and the ids of their runs (an LLM call is shown by its run id)
        known.update(r["id"] for r in as_json("lineage", trace_id, "--db", db.url)["runs"])
    for name, text in outputs.items():
        for line in text.splitlines():
            if len(line.rstrip()) > columns:  # only a whole id may make a line wider
                words = line.split()
                assert words[-1] in known, (name, line)
                assert len(" ".join(words[:-1])) <= 10, (name, line)
    for trace_id in ids:
        assert trace_id in outputs["traces"], trace_id  # whole, on one line
    assert db.llamaindex in outputs["show"] and db.llamaindex in outputs["lineage"]
    assert db.first in outputs["diff"] and db.llamaindex in outputs["diff"]
    assert document["document_id"] in outputs["lineage"]
    if columns == 200:  # wide enough: every column shown
        for header in ("started (UTC)", "status", "cost", "question", "name", "app",
                       "duration", "tokens"):
            assert header in outputs["traces"], header


def test_an_id_copied_from_the_table_works_in_every_command(db: DB) -> None:
    table = run("traces", "--db", db.url, columns=80).stdout
    copied = next(word for line in table.splitlines() for word in line.split()
                  if word.startswith(db.first[:8]))
    assert copied == db.first
    assert as_json("show", copied, "--db", db.url)["trace_id"] == db.first


def test_unique_prefixes_are_accepted_and_ambiguous_ones_listed(db: DB) -> None:
    prefix = db.second[:10]
    assert as_json("show", prefix, "--db", db.url)["trace_id"] == db.second
    assert as_json("lineage", prefix, "--db", db.url)["trace_id"] == db.second
    assert json.loads(run("replay", prefix, "--db", db.url).stdout)["parameters"]["seed"] == 99
    rows = as_json("diff", db.first[:10], prefix, "--db", db.url)
    assert not next(r for r in rows if r["field"] == "parameters")["same"]
    exported = run("export", prefix, "--db", db.url).stdout
    assert {json.loads(line)["run"]["trace_id"] for line in exported.splitlines()} == {
        db.second}
    # Runs of one trace have LangChain's time-ordered (v7) ids: they share a prefix.
    run_ids = sorted(r["id"] for r in as_json("lineage", db.first, "--db", db.url)["runs"]
                     if r["id"] != db.first)
    common = os.path.commonprefix(run_ids[:2])  # noqa: RUF071 - characters, not paths
    assert len(common) >= 4
    ambiguous = run("show", common, "--db", db.url, ok=False)
    assert ambiguous.exit_code == 1 and "is ambiguous" in ambiguous.stderr
    assert run_ids[0] in ambiguous.stderr and run_ids[1] in ambiguous.stderr
    assert ambiguous.stderr.count("\n") == 1
    missing = run("lineage", "ffffffff-no", "--db", db.url, ok=False)
    assert missing.exit_code == 1 and "no run or trace" in missing.stderr
    short = run("show", db.first[:3], "--db", db.url, ok=False)
    assert short.exit_code == 1 and "at least 4 characters" in short.stderr


# -- start-up: heavy libraries load only when needed (issue 20, point 9) ---------------------

HEAVY = ("sqlalchemy", "alembic", "psycopg", "rich", "pydantic", "genai_prices")


def _modules_after(*args: str) -> set[str]:
    code = (
        "import contextlib, io, json, sys\n"
        "from ragtrail.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    code = main({list(args)!r})\n"
        "print(json.dumps([code, sorted({m.split('.')[0] for m in sys.modules})]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    code_, modules = json.loads(done.stdout.splitlines()[-1])
    assert code_ == 0, done.stderr
    return set(modules) & set(HEAVY)


def test_help_imports_no_database_or_rendering_library(db: DB) -> None:
    assert _modules_after("--help") == set()
    assert _modules_after("traces", "--help") == set()
    assert _modules_after("db", "upgrade", "--help") == set()
    # Reading a SQLite database needs SQLAlchemy, never Alembic, psycopg or prices.
    assert _modules_after("traces", "--db", db.url) == {"sqlalchemy", "rich", "pydantic"}
    assert _modules_after("lineage", db.first, "--db", db.url, "--json") == {
        "sqlalchemy", "pydantic"}


def test_evals_source_choices_match_the_evaluation_sources() -> None:
    # The CLI spells the sources out so that --help does not import the query layer.
    from ragtrail.query import EvaluationSource
    from ragtrail.testing.internals import SOURCES

    assert tuple(s.value for s in EvaluationSource) == SOURCES
