"""Deleting traces (retention ``purge``, ``ragtrail purge``, erasure) also deletes the
tool definitions no remaining LLM call references, in the same transaction, on SQLite
and PostgreSQL; a definition another trace's call still offers stays.

Traces are LLM calls of a LangChain chat model with tools bound (``bind_tools``, as
``ChatOpenAI`` binds them), captured by ``RagtrailCallbackHandler``.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from governance_support import run
from langchain_core.tools import tool

from lc_support import ToolCallingChat
from ragtrail import Trail
from ragtrail.governance import erase, purge
from ragtrail.testing.internals import store_tables
from ragtrail_langchain import RagtrailCallbackHandler


@tool
def search_notes(query: str) -> str:
    """Search the engineering notes."""
    return "WAL lets readers proceed while one writer appends."


@tool
def get_weather(city: str) -> str:
    """Weather in a city."""
    return "sunny"


def _capture(url: str) -> dict[str, str]:
    """Three traces: alice's offers both tools, bob's and carol's only search_notes."""
    traces = {}
    with Trail(url, background=False) as trail:
        handler = RagtrailCallbackHandler(trail)
        for user, tools in (("alice", [search_notes, get_weather]), ("bob", [search_notes]),
                            ("carol", [search_notes])):
            rid = str(uuid.uuid4())
            ToolCallingChat().bind_tools(tools).invoke(
                "How does WAL work?", config={"callbacks": [handler], "run_id": rid,
                                              "metadata": {"user_id": user}})
            traces[user] = rid
        assert trail.flush(10)
    return traces


def _definitions(engine: sa.Engine) -> list[str]:
    with engine.connect() as conn:
        return sorted(conn.execute(sa.select(store_tables.tool_definitions.c.name)).scalars())


def test_erasure_and_purge_drop_tool_definitions_no_call_references(db_url: str) -> None:
    traces = _capture(db_url)
    engine = sa.create_engine(db_url)
    try:
        assert _definitions(engine) == ["get_weather", "search_notes"]
        # alice's trace goes: get_weather is offered by no remaining call; search_notes is.
        receipt = erase(engine, user_id="alice")
        assert receipt.counts["tool_definitions"] == 1
        assert _definitions(engine) == ["search_notes"]
        with Trail(db_url) as trail:  # what remains reads back whole
            (call,) = trail.lineage(traces["bob"]).llm_calls
            assert [t["name"] for t in call.metadata.tools or ()] == ["search_notes"]
            assert call.metadata.tools[0]["parameters"]
        # A dry run changes nothing; then bob's and carol's traces go, and the last one.
        later = datetime.now(timezone.utc) + timedelta(days=1)
        dry = purge(engine, older_than="1h", now=later, dry_run=True)
        assert dry.counts["tool_definitions"] == 1 and _definitions(engine) == ["search_notes"]
    finally:
        engine.dispose()
    out = json.loads(run("purge", "--older-than", "0s", "--db", db_url, "--yes",
                         "--json").stdout)
    (result,) = out["results"]
    assert result["traces"] == 2 and result["rows"]["tool_definitions"] == 1
    engine = sa.create_engine(db_url)
    try:
        assert _definitions(engine) == []
    finally:
        engine.dispose()
