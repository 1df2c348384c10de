"""The audit of reads: the web view and its JSON API record who read which trace (the
token's name), when and through which view; ``ragtrail audit`` lists it. SQLite and
PostgreSQL; the trace is captured by a real LangChain RAG chain."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone

from governance_support import run
from starlette.testclient import TestClient

from lc_support import build_rag_chain
from ragtrail import Trail
from ragtrail.testing.internals import audited_reads
from ragtrail.web import create_app
from ragtrail_langchain import RagtrailCallbackHandler

TOKEN = "s3cret-token-for-tests"



def _capture(url: str) -> str:
    rid = str(uuid.uuid4())
    with Trail(url) as trail:
        build_rag_chain().invoke("How does WAL work?", config={
            "callbacks": [RagtrailCallbackHandler(trail)], "run_id": rid})
        assert trail.flush(10)
    return rid


def test_reads_through_the_view_and_api_are_audited(db_url: str) -> None:
    trace = _capture(db_url)
    app = create_app(db_url, token=TOKEN, token_name="alice")
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with TestClient(app) as client:
        assert client.get(f"/traces/{trace}", headers=auth).status_code == 200
        assert client.get(f"/api/v1/traces/{trace}/detail", headers=auth).status_code == 200
        assert client.get(f"/traces/{trace}").status_code == 401  # no token: not a read
        assert client.get("/traces/no-such-trace", headers=auth).status_code == 404
        assert client.get("/traces", headers=auth).status_code == 200  # a list: no trace
    rows = json.loads(run("audit", "--db", db_url, "--json").stdout)
    assert [(r["reader"], r["view"], r["trace_id"]) for r in rows] == [
        ("alice", "trace", trace), ("alice", "api:detail", trace)]
    read_at = datetime.fromisoformat(rows[0]["read_at"])
    assert abs(read_at - datetime.now(timezone.utc)) < timedelta(minutes=5)
    text = run("audit", "--db", db_url).stdout
    assert "alice" in text and trace in text
    later = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
    assert json.loads(run("audit", "--since", later, "--db", db_url, "--json").stdout) == []
    # Without a token (loopback) reads are recorded as "local"; audit=False records none.
    with TestClient(create_app(db_url), base_url="http://127.0.0.1") as client:
        assert client.get(f"/traces/{trace}/lineage").status_code == 200
    with TestClient(create_app(db_url, audit=False), base_url="http://127.0.0.1") as client:
        assert client.get(f"/traces/{trace}").status_code == 200
    rows = json.loads(run("audit", "--db", db_url, "--json").stdout)
    assert [(r["reader"], r["view"]) for r in rows][2:] == [("local", "lineage")]


def test_audited_paths() -> None:
    assert audited_reads("/traces/t1/runs/r1", "") == [("run", "t1")]
    assert audited_reads("/api/v1/diff", "a=t1&b=t2") == [("api:diff", "t1"),
                                                            ("api:diff", "t2")]
    assert audited_reads("/usage", "") == [] and audited_reads("/traces", "q=x") == []
