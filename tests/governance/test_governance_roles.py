"""``ragtrail db roles`` on the local PostgreSQL server, with real roles: capture works
as the writer, the command line as the reader, purges as the admin; each refuses a role
that cannot do its work with one clear line. Role names are unique per test and the
roles are dropped afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from governance_support import run

from lc_support import build_rag_chain
from ragtrail import Trail
from ragtrail.errors import ConfigError
from ragtrail.governance.roles import roles_sql, valid_role_name
from ragtrail_langchain import RagtrailCallbackHandler

pytestmark = pytest.mark.postgres



@dataclass
class Roles:
    url: str
    writer: str
    reader: str
    admin: str

    def as_(self, role: str) -> str:
        return self.url.replace("://postgres@", f"://{role}@", 1)


@pytest.fixture
def roles(pg_url: str) -> Iterator[Roles]:
    assert "://postgres@" in pg_url
    Trail(pg_url).close()  # the tables, at this revision
    tag = uuid.uuid4().hex[:8]
    made = Roles(pg_url, f"rt_w_{tag}", f"rt_r_{tag}", f"rt_a_{tag}")
    engine = sa.create_engine(pg_url)
    try:
        yield made
    finally:
        with engine.begin() as conn:
            for role in (made.writer, made.reader, made.admin):
                exists = conn.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"),
                                      {"r": role}).first()
                if exists:
                    conn.execute(sa.text(f'REASSIGN OWNED BY "{role}" TO postgres'))
                    conn.execute(sa.text(f'DROP OWNED BY "{role}"'))
                    conn.execute(sa.text(f'DROP ROLE "{role}"'))
        engine.dispose()


def _capture(url: str, question: str) -> str:
    rid = str(uuid.uuid4())
    with Trail(url) as trail:
        build_rag_chain().invoke(question, config={
            "callbacks": [RagtrailCallbackHandler(trail, user_id="u-1")], "run_id": rid})
        assert trail.flush(10)
        stats = trail.sink.stats()  # type: ignore[attr-defined]
        assert stats.last_error is None and stats.stored == stats.offered > 0, stats
    return rid


def test_roles_writer_captures_reader_reads_admin_purges(roles: Roles) -> None:
    printed = run("db", "roles", roles.url, "--writer", roles.writer, "--reader",
                  roles.reader, "--admin", roles.admin, "--print-sql").output
    assert f'CREATE ROLE "{roles.writer}" LOGIN' in printed and "DELETE" not in printed
    with sa.create_engine(roles.url).connect() as conn:  # --print-sql changes nothing
        assert not conn.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"),
                                {"r": roles.writer}).first()
    run("db", "roles", roles.url, "--writer", roles.writer, "--reader", roles.reader,
        "--admin", roles.admin)
    # Capture as the writer: everything stored.
    rid = _capture(roles.as_(roles.writer), "How does SQLite WAL mode work?")
    # The reader reads it, through every read command.
    listed = run("traces", "--db", roles.as_(roles.reader), "--json").stdout
    assert rid in listed
    assert rid in run("lineage", rid, "--db", roles.as_(roles.reader), "--json").stdout
    # The writer cannot read the trail, nor delete.
    engine = sa.create_engine(roles.as_(roles.writer))
    try:
        with engine.connect() as conn:
            for statement in ("SELECT inputs FROM runs", "DELETE FROM runs",
                              "SELECT content FROM documents", "DELETE FROM read_audit"):
                with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
                    conn.execute(sa.text(statement))
                conn.rollback()
    finally:
        engine.dispose()
    # The reader cannot write, delete or change the audit (it may only add lines).
    engine = sa.create_engine(roles.as_(roles.reader))
    try:
        with engine.connect() as conn:
            for statement in ("DELETE FROM runs", "UPDATE runs SET name = 'x'",
                              "DELETE FROM read_audit", "UPDATE read_audit SET reader = 'x'"):
                with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
                    conn.execute(sa.text(statement))
                conn.rollback()
            conn.execute(sa.text("INSERT INTO read_audit (id, read_at, reader, view) "
                                 "VALUES ('a1', now(), 'alice', 'trace')"))
            conn.commit()
    finally:
        engine.dispose()
    # Each refuses clearly a role that cannot do its work.
    for role, purpose in ((roles.writer, "cannot read"), (roles.admin, None)):
        result = run("traces", "--db", roles.as_(role), code=1 if purpose else 0)
        if purpose:
            assert purpose in result.output and "connect as a reader role" in result.output
    with pytest.raises(ConfigError, match=r"cannot capture into .*connect as a writer role"):
        Trail(roles.as_(roles.reader))
    result = run("purge", "--older-than", "1s", "--yes", "--db", roles.as_(roles.reader),
                 code=1)
    assert "cannot purge or erase" in result.output and "lacks DELETE" in result.output
    assert "erased 1 traces" in run("erase", "--user", "u-1", "--yes", "--db",
                                    roles.as_(roles.admin)).output
    assert run("traces", "--db", roles.as_(roles.reader), "--json").stdout.strip() == "[]"


@pytest.mark.parametrize("bad", ["1abc", "a-b", "x; DROP TABLE runs", 'a"b', "", "a" * 64])
def test_role_names_must_be_identifiers(bad: str, pg_url: str) -> None:
    with pytest.raises(ConfigError, match="is not a valid role name"):
        valid_role_name(bad)
    with pytest.raises(ConfigError, match="is not a valid role name"):
        roles_sql(schema="s", writer=bad)
    result = run("db", "roles", pg_url, "--writer", bad or "''", "--print-sql", code=1)
    assert "--writer" in result.output and "not a valid role name" in result.output


def test_roles_bad_combinations(pg_url: str, tmp_path: Any) -> None:
    with pytest.raises(ConfigError, match="at least one"):
        roles_sql(schema="s")
    with pytest.raises(ConfigError, match="different roles"):
        roles_sql(schema="s", writer="same", reader="same")
    url = f"sqlite:///{tmp_path / 'r.db'}"
    Trail(url).close()
    assert "PostgreSQL feature" in run("db", "roles", url, "--reader", "r1", code=1).output
