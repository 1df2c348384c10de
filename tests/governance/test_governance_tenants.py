"""Tenants: a tenant on the Trail and per request (LangChain run metadata, LlamaIndex
``instrument_tags``), stored on every run; on PostgreSQL a reader role created with
``ragtrail db roles --tenant A`` sees nothing of tenant B through the query API, the
command line and the web view (row-level security)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from governance_support import run
from llama_index.core.instrumentation.dispatcher import instrument_tags
from llama_index.core.llms import MockLLM
from starlette.testclient import TestClient

from lc_support import build_rag_chain
from li_support import KeywordReranker, build_index, reset_llamaindex
from ragtrail import Trail
from ragtrail.errors import ConfigError, NotFoundError
from ragtrail.governance.roles import roles_sql
from ragtrail.web import create_app
from ragtrail_langchain import RagtrailCallbackHandler
from ragtrail_llamaindex import instrument, uninstrument

Q_WAL = "How do readers and a writer share SQLite in WAL mode?"
Q_PG = "Which PostgreSQL index serves JSONB containment?"



def _lc(trail: Trail, question: str, tenant: str | None = None) -> str:
    rid = str(uuid.uuid4())
    meta = {"tenant": tenant} if tenant else {}
    build_rag_chain().invoke(question, config={
        "callbacks": [RagtrailCallbackHandler(trail)], "run_id": rid, "metadata": meta})
    return rid


@pytest.fixture
def _clean_llamaindex() -> Iterator[None]:
    yield from reset_llamaindex()


@pytest.mark.usefixtures("_clean_llamaindex")
def test_tenant_on_the_trail_and_per_request_in_both_adapters(db_url: str) -> None:
    with Trail(db_url, tenant="acme") as trail:
        default = _lc(trail, Q_WAL)
        other = _lc(trail, Q_PG, tenant="globex")
        handler = instrument(trail)
        try:
            engine = build_index().as_query_engine(
                llm=MockLLM(), similarity_top_k=4, node_postprocessors=[KeywordReranker(top_n=2)])
            with instrument_tags({"user_id": "u-1", "tenant": "initech"}):
                engine.query("how does write ahead logging work in sqlite")
        finally:
            uninstrument(trail)
        assert trail.flush(10)
        tenants = {trace: {r.tenant for r in trail.lineage(trace).runs}
                   for trace in (default, other, handler.last_trace_id)}
    assert tenants == {default: {"acme"}, other: {"globex"},
                       handler.last_trace_id: {"initech"}}
    with pytest.raises(ConfigError, match="tenant"):
        Trail(db_url, tenant="")


@pytest.fixture
def two_tenants(pg_url: str) -> Iterator[dict[str, Any]]:
    tag = uuid.uuid4().hex[:8]
    roles = {"A": f"rt_ra_{tag}", "B": f"rt_rb_{tag}", "W": f"rt_wa_{tag}"}
    with Trail(pg_url, tenant="A") as trail:
        a = _lc(trail, Q_WAL)
        b = _lc(trail, Q_PG, tenant="B")
        assert trail.flush(10)
        b_docs = {d.content_hash for d in trail.lineage(b).documents}
        a_docs = {d.content_hash for d in trail.lineage(a).documents}
        a_values = {r.id: (r.inputs, r.outputs) for r in trail.lineage(a).runs}
    engine = sa.create_engine(pg_url)
    with engine.connect() as conn:  # payloads stored apart (revision 0011) A's runs hold
        a_payloads = set(conn.execute(sa.text(
            "SELECT inputs_ref FROM runs WHERE trace_id = :a UNION "
            "SELECT outputs_ref FROM runs WHERE trace_id = :a"), {"a": a}).scalars()) - {None}
    try:
        yield {"url": pg_url, "a": a, "b": b, "only_b": b_docs - a_docs, "a_docs": a_docs,
               "a_values": a_values, "a_payloads": a_payloads,
               "roles": roles,
               "as": lambda role: pg_url.replace("://postgres@", f"://{role}@", 1)}
    finally:
        with engine.begin() as conn:
            for role in roles.values():
                if conn.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"),
                                {"r": role}).first():
                    conn.execute(sa.text(f'DROP OWNED BY "{role}"'))
                    conn.execute(sa.text(f'DROP ROLE "{role}"'))
        engine.dispose()


@pytest.mark.postgres
def test_a_tenants_reader_sees_nothing_of_another_tenant(two_tenants: dict[str, Any]) -> None:
    t = two_tenants
    url, roles, as_ = t["url"], t["roles"], t["as"]
    assert t["only_b"]  # a document only tenant B's answer used
    run("db", "roles", url, "--reader", roles["A"], "--tenant", "A")
    run("db", "roles", url, "--reader", roles["B"], "--writer", roles["W"], "--tenant", "B")
    # The query API.
    reader = Trail.open_readonly(as_(roles["A"]))
    try:
        assert [s.trace_id for s in reader.traces()] == [t["a"]]
        with pytest.raises(NotFoundError):
            reader.lineage(t["b"])
        assert {r.id: (r.inputs, r.outputs)
                for r in reader.lineage(t["a"]).runs} == t["a_values"]
        for doc in t["only_b"]:
            assert reader.answers_using(doc) == []
        calls = {row.calls for row in reader.usage([])}
        assert calls == {len(reader.lineage(t["a"]).llm_calls)}
        with reader.store.engine.connect() as conn:
            for table in ("runs", "llm_calls", "document_links"):
                traces = set(conn.execute(sa.text(f"SELECT DISTINCT trace_id FROM {table}"))
                             .scalars())
                assert traces == {t["a"]}, table
            docs = set(conn.execute(sa.text("SELECT content_hash FROM documents")).scalars())
            assert docs == t["a_docs"]
            keys = set(conn.execute(sa.text("SELECT hash FROM payloads")).scalars())
            assert t["a_payloads"] and keys == t["a_payloads"]
            with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
                conn.execute(sa.text("SELECT * FROM erasure_log"))
    finally:
        reader.close()
    # The command line.
    assert "cannot read the read audit" in run("audit", "--db", as_(roles["A"]), code=1).output
    listed = json.loads(run("traces", "--db", as_(roles["A"]), "--json").stdout)
    assert [r["trace_id"] for r in listed] == [t["a"]]
    assert "no run or trace" in run("lineage", t["b"], "--db", as_(roles["A"]), code=1).output \
        or t["b"] not in run("lineage", t["b"], "--db", as_(roles["A"]), code=1).stdout
    # The web view and its API.
    with TestClient(create_app(as_(roles["A"])), base_url="http://127.0.0.1") as client:
        assert client.get(f"/traces/{t['b']}").status_code == 404
        assert client.get(f"/api/v1/traces/{t['b']}/detail").status_code == 404
        page = client.get("/api/v1/traces").json()
        assert [x["trace_id"] for x in page["traces"]] == [t["a"]]
        assert t["b"] not in client.get("/traces").text
        assert client.get(f"/traces/{t['a']}").status_code == 200
    # Tenant B's reader sees B only; B's writer cannot write a run of tenant A.
    assert [r["trace_id"] for r in json.loads(
        run("traces", "--db", as_(roles["B"]), "--json").stdout)] == [t["b"]]
    with Trail(as_(roles["W"]), tenant="B") as trail:
        _lc(trail, Q_WAL)
        assert trail.flush(10)
    with Trail(as_(roles["W"]), tenant="A") as trail:
        _lc(trail, Q_WAL)
        trail.flush(10)
        error = trail.sink.stats().last_error  # type: ignore[attr-defined]
        assert error is not None and "row-level security" in error, error
    assert len(json.loads(run("traces", "--db", as_(roles["B"]), "--json").stdout)) == 2


def test_tenant_bad_input() -> None:
    with pytest.raises(ConfigError, match="not a valid tenant"):
        roles_sql(schema="s", reader="r", tenant="a\nb")
    with pytest.raises(ConfigError, match="--writer or --reader"):
        roles_sql(schema="s", admin="a", tenant="A")
    sql = "\n".join(roles_sql(schema="s", reader="r", tenant="O'Brien"))
    assert "tenant = 'O''Brien'" in sql and "ENABLE ROW LEVEL SECURITY" in sql


def test_purge_one_tenant(db_url: str) -> None:
    with Trail(db_url, tenant="acme") as trail:
        kept = _lc(trail, Q_WAL)
        gone = _lc(trail, Q_PG, tenant="globex")
        assert trail.flush(10)
    dry = json.loads(run("purge", "--tenant", "globex", "--older-than", "0s", "--dry-run",
                         "--db", db_url, "--json").stdout)
    assert dry["deleted_traces"] == 1
    run("purge", "--tenant", "globex", "--older-than", "0s", "--yes", "--db", db_url)
    listed = json.loads(run("traces", "--db", db_url, "--json").stdout)
    assert [r["trace_id"] for r in listed] == [kept] and gone != kept
