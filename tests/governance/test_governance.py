"""Governance: erasure by user and session, retention (per app, dry run, policy files),
the erasure log and the read audit, on SQLite and PostgreSQL.

Traces are captured by a real LangChain RAG chain (LCEL, retriever, prompt, chat model)
through ``RagtrailCallbackHandler``, with the user and session given per invocation in
LangChain's run metadata, as applications do.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from governance_support import run

from lc_support import build_rag_chain
from ragtrail import Trail
from ragtrail.errors import ConfigError
from ragtrail.governance import (
    RetentionPolicy,
    RetentionRule,
    apply_policy,
    erase,
    erasure_receipts,
    load_policy,
    purge,
)
from ragtrail.store import open_store
from ragtrail.testing.internals import store_migrate, store_tables
from ragtrail_langchain import RagtrailCallbackHandler

ALICE, BOB = "alice@example.com", "bob@example.com"
Q_WAL = "How do readers and a writer share SQLite in WAL mode?"
Q_PG = "Which PostgreSQL index serves JSONB containment?"



@dataclass
class Captured:
    url: str
    traces: dict[str, list[str]] = field(default_factory=dict)  # user -> trace ids
    judge: str = ""


def _capture(url: str) -> Captured:
    out = Captured(url)
    with Trail(url, background=False) as trail:
        handler = RagtrailCallbackHandler(trail, app_name="support")
        chain = build_rag_chain()
        for user, session, question, app in (
                (ALICE, "s-alice", Q_WAL, "support"), (ALICE, "s-alice", Q_PG, "support"),
                (BOB, "s-bob", Q_WAL, "support"), (BOB, "s-bob2", Q_PG, "billing")):
            rid = str(uuid.uuid4())
            chain.invoke(question, config={"callbacks": [handler], "run_id": rid,
                                           "metadata": {"user_id": user, "session_id": session,
                                                        "app_name": app}})
            out.traces.setdefault(user, []).append(rid)
        with trail.run("judge: faithfulness") as judge:
            judge.outputs = {"verdict": "yes"}
        out.judge = judge.id
        trail.add_evaluation(out.traces[ALICE][0], "faithfulness", score=1.0, source="llm",
                             judge_trace_id=out.judge)
        trail.add_evaluation(out.traces[BOB][0], "helpfulness", score=0.5, source="human")
        assert trail.flush(10)
    return out


@pytest.fixture
def captured(db_url: str) -> Captured:
    return _capture(db_url)


def _dump(url: str) -> dict[str, list[dict[str, Any]]]:
    """Every row of every ragtrail table, as plain data."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return {name: [dict(r._mapping) for r in conn.execute(sa.select(table))]
                    for name, table in store_tables.metadata.tables.items()}
    finally:
        engine.dispose()


def _doc_hashes(rows: list[dict[str, Any]], traces: set[str]) -> set[str]:
    return {r["content_hash"] for r in rows if r["trace_id"] in traces}


def test_erase_user_leaves_no_row_of_theirs_and_keeps_shared_documents(
        captured: Captured) -> None:
    before = _dump(captured.url)
    alice = set(captured.traces[ALICE])
    bob = set(captured.traces[BOB])
    alice_docs = _doc_hashes(before["document_links"], alice)
    bob_docs = _doc_hashes(before["document_links"], bob)
    assert alice_docs & bob_docs and alice_docs  # shared documents exist to keep
    with Trail(captured.url) as trail:
        user_hash = trail.redactor.hash_user(ALICE)
    engine = sa.create_engine(captured.url)
    try:
        receipt = erase(engine, user_id=ALICE)
    finally:
        engine.dispose()
    after = _dump(captured.url)
    gone = alice | {captured.judge}
    text = json.dumps({k: v for k, v in after.items() if k != "erasure_log"}, default=str)
    for trace_id in gone:
        assert trace_id not in text
    assert user_hash not in text and ALICE not in json.dumps(after, default=str)
    assert {r["trace_id"] for r in after["runs"]} == bob
    assert {r["trace_id"] for r in after["evaluations"]} == {captured.traces[BOB][0]}
    # Documents: Bob's stay (also those Alice used too); Alice's alone go.
    assert {d["content_hash"] for d in after["documents"]} == bob_docs
    # The receipt: counts of what went, the hash, never the raw id.
    assert receipt.subject == "user" and receipt.subject_hash == user_hash
    assert receipt.traces == 2
    removed_runs = len(before["runs"]) - len(after["runs"])
    assert receipt.counts["runs"] == removed_runs > 0
    assert receipt.counts["llm_calls"] == len(before["llm_calls"]) - len(after["llm_calls"]) > 0
    assert receipt.counts["documents"] == len(alice_docs - bob_docs)
    assert receipt.counts["evaluations"] == 1
    (logged,) = after["erasure_log"]
    assert logged["subject_hash"] == user_hash and logged["traces"] == 2
    assert ALICE not in json.dumps(logged, default=str)


def test_erase_cli_by_session_and_unknown_user(captured: Captured) -> None:
    out = json.loads(run("erase", "--session", "s-bob", "--db", captured.url, "--yes",
                         "--json").stdout)
    assert out["subject"] == "session" and out["traces"] == 1
    remaining = {r["trace_id"] for r in _dump(captured.url)["runs"]}
    assert captured.traces[BOB][0] not in remaining and captured.traces[BOB][1] in remaining
    assert "s-bob" not in json.dumps(_dump(captured.url)["erasure_log"], default=str)
    # A user with no traces: reported, exit 0, nothing else changed.
    result = run("erase", "--user", "nobody@example.com", "--db", captured.url, "--yes")
    assert "no traces of user" in result.output
    assert {r["trace_id"] for r in _dump(captured.url)["runs"]} == remaining
    receipts = json.loads(run("audit", "--erasures", "--db", captured.url, "--json").stdout)
    assert [(r["subject"], r["traces"]) for r in receipts] == [("session", 1), ("user", 0)]
    # Bad input: neither or both.
    assert "exactly one" in run("erase", "--db", captured.url, code=2).output
    assert "exactly one" in run("erase", "--user", "a", "--session", "b", "--db",
                                captured.url, code=2).output


def test_erase_matches_the_capture_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                       ) -> None:
    monkeypatch.setenv("RAGTRAIL_USER_HASH_SECRET", "k-1")
    url = f"sqlite:///{tmp_path / 'keyed.db'}"
    captured = _capture(url)
    monkeypatch.setenv("RAGTRAIL_USER_HASH_SECRET", "another key")
    assert "no traces" in run("erase", "--user", ALICE, "--db", url, "--yes").output
    monkeypatch.setenv("RAGTRAIL_USER_HASH_SECRET", "k-1")
    assert "erased 2 traces" in run("erase", "--user", ALICE, "--db", url, "--yes").output
    assert not set(captured.traces[ALICE]) & {r["trace_id"] for r in _dump(url)["runs"]}


def _age(url: str, trace_ids: list[str], days: int) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            runs = store_tables.runs
            conn.execute(sa.update(runs).where(runs.c.trace_id.in_(trace_ids)).values(
                started_at=datetime.now(timezone.utc) - timedelta(days=days)))
    finally:
        engine.dispose()


def test_purge_per_app_dry_run_counts_exactly(captured: Captured) -> None:
    everything = [t for ts in captured.traces.values() for t in ts]
    _age(captured.url, everything, 60)
    before = _dump(captured.url)
    dry = json.loads(run("purge", "--app", "billing", "--older-than", "30d", "--dry-run",
                         "--db", captured.url, "--json").stdout)
    assert _dump(captured.url) == before  # a dry run changes nothing
    (result,) = dry["results"]
    assert dry["dry_run"] and result["traces"] == 1 and result["app"] == "billing"
    real = json.loads(run("purge", "--app", "billing", "--older-than", "30d", "--yes",
                          "--db", captured.url, "--json").stdout)["results"][0]
    assert real["rows"] == result["rows"] and real["traces"] == 1
    after = _dump(captured.url)
    assert {r["trace_id"] for r in after["runs"]} == (
        {r["trace_id"] for r in before["runs"]} - {captured.traces[BOB][1]})
    assert result["rows"]["runs"] == len(before["runs"]) - len(after["runs"])
    # Traces younger than the limit stay.
    assert "deleted 0 traces" in run("purge", "--older-than", "90d", "--yes", "--db",
                                     captured.url).output


def test_purge_takes_evaluations_judge_traces_and_unlinked_documents(
        captured: Captured) -> None:
    engine = sa.create_engine(captured.url)
    try:
        later = datetime.now(timezone.utc) + timedelta(days=31)
        result = purge(engine, older_than="30d", app="support", now=later)
    finally:
        engine.dispose()
    after = _dump(captured.url)
    assert result.traces == 3
    assert {r["trace_id"] for r in after["runs"]} == {captured.traces[BOB][1]}
    assert after["evaluations"] == []  # with their judge trace (not an app run)
    assert captured.judge not in {r["trace_id"] for r in after["runs"]}
    linked = {r["content_hash"] for r in after["document_links"]}
    assert {d["content_hash"] for d in after["documents"]} == linked


def test_policy_files_toml_and_json(captured: Captured, tmp_path: Path) -> None:
    _age(captured.url, captured.traces[BOB], 10)
    toml = tmp_path / "retention.toml"
    toml.write_text('[[rules]]\napp = "billing"\nolder_than = "7d"\n\n'
                    '[[rules]]\nolder_than = "365d"\n')
    out = json.loads(run("purge", "--policy", str(toml), "--yes", "--db", captured.url,
                         "--json").stdout)
    assert [r["traces"] for r in out["results"]] == [1, 0]
    assert captured.traces[BOB][1] not in {r["trace_id"] for r in _dump(captured.url)["runs"]}
    as_json = tmp_path / "retention.json"
    as_json.write_text(json.dumps({"rules": [{"older_than": "7d"}]}))
    assert load_policy(as_json) == RetentionPolicy(rules=[RetentionRule(older_than="7d")])
    out = json.loads(run("purge", "--policy", str(as_json), "--yes", "--db", captured.url,
                         "--json").stdout)
    assert [r["traces"] for r in out["results"]] == [1]  # Bob's other, 10 days old


@pytest.mark.parametrize(("text", "problem"), [
    ('[[rules]]\nolder_than = "30d"\nkeep = true\n', "unknown key 'rules.0.keep'"),
    ('retain = "30d"\n', "unknown key 'retain'"),
    ('[[rules]]\napp = "x"\n', "missing key 'rules.0.older_than'"),
    ('[[rules]]\nolder_than = "a month"\n', "expected a duration like 30d"),
    ("[[rules]\n", "not valid TOML"),
])
def test_policy_file_errors_are_clear(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"policy file .*policy\.toml"):
        load_policy(path)
    url = f"sqlite:///{tmp_path / 'p.db'}"
    open_store(url).close()
    result = run("purge", "--policy", str(path), "--db", url, "--yes", code=1)
    assert problem in result.output and "Traceback" not in result.output


def test_purge_and_erase_refuse_an_older_schema(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    open_store(url).close()
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            command.downgrade(store_migrate._config(conn), "0006")
    finally:
        engine.dispose()
    for args in (("purge", "--older-than", "30d", "--yes"),
                 ("erase", "--user", ALICE, "--yes")):
        result = run(*args, "--db", url, code=1)
        assert "ragtrail db upgrade" in result.output, result.output
    assert store_migrate.VERSION_TABLE in sa.inspect(sa.create_engine(url)).get_table_names()


def test_purge_bad_input(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    open_store(url).close()
    assert "give --older-than" in run("purge", "--db", url, code=2).output
    assert "expected a duration" in run("purge", "--older-than", "soon", "--db", url,
                                        "--yes", code=1).output
    policy = tmp_path / "p.toml"
    policy.write_text('[[rules]]\nolder_than = "1d"\n')
    assert "--policy replaces" in run("purge", "--policy", str(policy), "--app", "a",
                                      "--db", url, code=2).output


def test_policy_applies_rules_in_order(captured: Captured) -> None:
    engine = sa.create_engine(captured.url)
    try:
        later = datetime.now(timezone.utc) + timedelta(days=8)
        results = apply_policy(engine, RetentionPolicy(rules=[
            RetentionRule(older_than="7d", app="billing"),
            RetentionRule(older_than="30d")]), now=later)
        assert [r.traces for r in results] == [1, 0]
        assert erasure_receipts(engine) == []
    finally:
        engine.dispose()

