"""Read commands and a read-only Trail never create or change anything (issue 20, point 2).

Run on another application's SQLite database, on an empty file, on a path that does not
exist, on a ragtrail database and on an empty PostgreSQL schema: the file's bytes and
``sqlite_master`` (or the schema's tables) are the same afterwards, and a database
without ragtrail's tables is one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import hashlib
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from lc_support import build_rag_chain
from ragtrail import ConfigError, StoreUnavailableError, Trail
from ragtrail.cli import cli
from ragtrail_langchain import RagtrailCallbackHandler

RUN = "0f0e0d0c-0000-4000-8000-000000000001"

#: Every read command, with the arguments it needs (ids need not exist: the database is
#: refused first).
READ_COMMANDS: list[list[str]] = [
    ["traces"],
    ["show", RUN],
    ["lineage", RUN],
    ["documents", "doc-1"],
    ["usage", "--by", "template"],
    ["diff", RUN, RUN],
    ["replay", RUN],
    ["export"],
    ["export", RUN],
]


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def fingerprint(path: Path) -> tuple[str, list[Any], list[str]]:
    """The file's bytes (hashed), its sqlite_master and the files beside it."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        master = conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()
    finally:
        conn.close()
    return digest, master, sorted(p.name for p in path.parent.iterdir())


def other_application_db(path: Path) -> Path:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO customers (name) VALUES ('Ada'), ('Grace')")
    conn.commit()
    conn.close()
    return path


@pytest.mark.parametrize("kind", ["other application", "empty file"])
@pytest.mark.parametrize("command", READ_COMMANDS, ids=lambda c: " ".join(c[:1]))
def test_read_commands_leave_a_foreign_database_untouched(
        tmp_path: Path, kind: str, command: list[str]) -> None:
    path = tmp_path / "app.db"
    if kind == "empty file":
        path.write_bytes(b"")
    else:
        other_application_db(path)
    before = fingerprint(path)
    result = invoke(*command, "--db", f"sqlite:///{path}")
    assert result.exit_code == 1, result.output
    assert "has no ragtrail tables" in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert fingerprint(path) == before
    if kind == "empty file":
        assert path.read_bytes() == b""


@pytest.mark.parametrize("command", READ_COMMANDS, ids=lambda c: " ".join(c[:1]))
def test_read_commands_never_create_a_missing_database(tmp_path: Path,
                                                       command: list[str]) -> None:
    path = tmp_path / "nothing-here.db"
    result = invoke(*command, "--db", f"sqlite:///{path}")
    assert result.exit_code == 1
    assert "no ragtrail database at" in result.stderr and result.stderr.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_purge_on_a_foreign_database_refuses_and_changes_nothing(tmp_path: Path) -> None:
    path = other_application_db(tmp_path / "app.db")
    before = fingerprint(path)
    result = invoke("purge", "--older-than", "1d", "--yes", "--db", f"sqlite:///{path}")
    assert result.exit_code == 1 and "has no ragtrail tables" in result.stderr
    assert fingerprint(path) == before


@pytest.fixture
def ragtrail_db(tmp_path: Path) -> tuple[Path, str]:
    """A ragtrail database holding one real LangChain RAG run; returns (path, trace id)."""
    path = tmp_path / "trail.db"
    run_id = str(uuid.uuid4())
    with Trail(f"sqlite:///{path}") as trail:
        build_rag_chain().invoke("How does WAL mode work?", config={
            "callbacks": [RagtrailCallbackHandler(trail)], "run_id": run_id})
        assert trail.flush(10)
    return path, run_id


def test_read_commands_leave_a_ragtrail_database_byte_for_byte(
        ragtrail_db: tuple[Path, str]) -> None:
    path, trace = ragtrail_db
    url = f"sqlite:///{path}"
    document = Trail.open_readonly(url).lineage(trace).documents[0].document_id
    digest, master, _ = fingerprint(path)
    for command in (["traces"], ["show", trace], ["lineage", trace], ["documents", document],
                    ["usage", "--by", "template"], ["diff", trace, trace], ["replay", trace],
                    ["export"], ["export", trace[:13]], ["schema"]):
        result = invoke(*command, "--db", url) if command != ["schema"] else invoke(*command)
        assert result.exit_code == 0, (command, result.output)
        assert fingerprint(path)[:2] == (digest, master), command


def test_a_readonly_trail_queries_and_refuses_to_capture(ragtrail_db: tuple[Path, str]) -> None:
    path, trace = ragtrail_db
    before = fingerprint(path)[:2]
    trail = Trail.open_readonly(f"sqlite:///{path}")
    assert trail.readonly and trail.store.readonly
    assert [t.trace_id for t in trail.traces()] == [trace]
    assert trail.lineage(trace).trace_id == trace
    assert trail.resolve_id(trace[:13]) == trace
    with pytest.raises(ConfigError, match="read-only"):
        RagtrailCallbackHandler(trail)
    with pytest.raises(ConfigError, match="read-only"), trail.run("mine"):
        pass
    with pytest.raises(ConfigError, match="read-only"):
        trail.store.purge(before=trail.traces()[0].started_at)
    # SQLite itself refuses: the connection was opened with mode=ro.
    with pytest.raises(sa.exc.OperationalError, match="readonly"), \
            trail.store.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE sneaky (x INTEGER)")
    assert trail.close()
    assert fingerprint(path)[:2] == before


def test_readonly_trail_errors_are_clear(tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"
    with pytest.raises(StoreUnavailableError, match="no ragtrail database at"):
        Trail.open_readonly(f"sqlite:///{missing}")
    assert not missing.exists()
    foreign = other_application_db(tmp_path / "app.db")
    with pytest.raises(StoreUnavailableError, match="has no ragtrail tables"):
        Trail.open_readonly(f"sqlite:///{foreign}")
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database, just text" * 200)
    with pytest.raises(StoreUnavailableError, match="cannot read database"):
        Trail.open_readonly(f"sqlite:///{garbage}")
    with pytest.raises(StoreUnavailableError, match="in-memory"):
        Trail.open_readonly("sqlite://")


def test_capture_trail_import_and_db_upgrade_still_create(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    assert invoke("db", "upgrade", url).exit_code == 0
    assert "runs" in [row[1] for row in fingerprint(tmp_path / "new.db")[1]]
    empty = tmp_path / "import.jsonl"
    empty.write_text("")
    target = tmp_path / "imported.db"
    assert invoke("import", str(empty), "--db", f"sqlite:///{target}").exit_code == 0
    assert "runs" in [row[1] for row in fingerprint(target)[1]]


def _tables(engine: sa.Engine) -> list[str]:
    return sorted(sa.inspect(engine).get_table_names())


@pytest.mark.postgres
def test_read_commands_leave_an_empty_postgres_schema_empty(pg_url: str) -> None:
    engine = sa.create_engine(pg_url)
    try:
        assert _tables(engine) == []
        for command in READ_COMMANDS:
            result = invoke(*command, "--db", pg_url)
            assert result.exit_code == 1, (command, result.output)
            assert "has no ragtrail tables" in result.stderr, command
            assert _tables(engine) == [], command
        with pytest.raises(StoreUnavailableError):
            Trail.open_readonly(pg_url)
        assert _tables(engine) == []
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_a_readonly_postgres_session_reads_and_cannot_write(pg_url: str) -> None:
    run_id = str(uuid.uuid4())
    with Trail(pg_url) as trail:
        build_rag_chain().invoke("How does WAL mode work?", config={
            "callbacks": [RagtrailCallbackHandler(trail)], "run_id": run_id})
        assert trail.flush(10)
    for command in (["traces"], ["show", run_id[:13]], ["lineage", run_id], ["usage"]):
        result = invoke(*command, "--db", pg_url, "--json")
        assert result.exit_code == 0, (command, result.output)
    trail = Trail.open_readonly(pg_url)
    try:
        assert trail.lineage(run_id).trace_id == run_id
        with pytest.raises(sa.exc.InternalError, match="read-only transaction"), \
                trail.store.engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE sneaky (x integer)")
    finally:
        trail.close()
