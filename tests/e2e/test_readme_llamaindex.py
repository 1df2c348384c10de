"""The README's LlamaIndex claims, checked against what is really stored and printed.

- Agents stream every model call, so without ``stream_options={"include_usage": True}``
  their OpenAI calls have no tokens and no cost, and ``ragtrail usage`` counts them as
  unpriced calls (a real ``FunctionAgent`` and OpenAI client against the fake provider).
- Which LlamaIndex spans become runs, which are folded into their parents, and that
  children are re-wired to the nearest stored ancestor (LlamaIndex's own span tree,
  collected by a span handler of its own, against the stored runs).
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from llama_index.core import Settings
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.llms import MockLLM
from llama_index.llms.openai import OpenAI

from li_support import SpanCollector, build_index, reset_llamaindex
from provider_server import (
    ANSWER,
    EXPECTED_USAGE,
    OPENAI_MODEL,
    ProviderServer,
    assert_priced,
    serve_provider,
)
from ragtrail import Trail
from ragtrail.cli import cli
from ragtrail.schemas import PriceStatus, RunKind
from ragtrail_llamaindex import instrument
from ragtrail_llamaindex.testing import span_name, span_role_bases

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
LLAMAINDEX_SECTION = README[README.index("\nLlamaIndex:\n"):README.index("## What is captured")]

provider = pytest.fixture(name="provider")(serve_provider)
_reset = pytest.fixture(autouse=True)(reset_llamaindex)


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ragtrail.db'}"


# -- agents stream: no usage unless asked ---------------------------------------------------


def lookup(term: str) -> str:
    """Look a database term up."""
    return "write-ahead logging"


def run_agent(server: ProviderServer, url: str, include_usage: bool) -> str:
    extra = {"stream_options": {"include_usage": True}} if include_usage else {}
    llm = OpenAI(model=OPENAI_MODEL, api_base=server.openai_url, api_key="sk-test",
                 max_retries=0, timeout=10, additional_kwargs=extra)
    agent = FunctionAgent(tools=[lookup], llm=llm)
    with Trail(url) as trail:
        handler = instrument(trail)

        async def ask() -> Any:
            return await agent.run("What is WAL?")

        assert str(asyncio.run(ask())) == ANSWER
        assert trail.flush(10.0) and handler.last_trace_id is not None
        return handler.last_trace_id


def usage_json(url: str) -> list[dict[str, Any]]:
    result = CliRunner().invoke(cli, ["usage", "--db", url, "--json"])
    assert result.exit_code == 0, result.output
    rows: list[dict[str, Any]] = json.loads(result.output)
    return rows


def test_readme_says_agents_need_include_usage() -> None:
    top = LLAMAINDEX_SECTION[:LLAMAINDEX_SECTION.index("```python")]  # before the example
    for claim in ('"stream_options": {"include_usage":', "no tokens and no cost", "no_usage",
                  "`ragtrail usage`", "`unpriced calls`", "streaming=False"):
        assert claim in top.replace("\n", " "), claim


def test_agent_calls_without_include_usage_have_no_tokens_and_no_cost(
        provider: ProviderServer, db_url: str) -> None:
    trace_id = run_agent(provider, db_url, include_usage=False)
    received = provider.last()
    assert received.streamed and "stream_options" not in received.body  # as the agent sent it
    with Trail(db_url) as trail:
        calls = trail.lineage(trace_id).llm_calls
    assert calls, "the agent's model call was stored"
    for call in calls:
        cost = call.metadata.cost_metrics
        assert call.metadata.token_usage is None
        assert cost is not None and cost.total_cost is None
        assert cost.price_status is PriceStatus.NO_USAGE
    (row,) = usage_json(db_url)
    assert row["group"] == {"model": OPENAI_MODEL}
    assert (row["calls"], row["unpriced_calls"], row["priced_calls"]) == (len(calls),
                                                                          len(calls), 0)
    assert (row["total_tokens"], row["total_cost"]) == (0, None)
    table = CliRunner().invoke(cli, ["usage", "--db", db_url], env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    assert "unpriced calls" in table.output and "unknown" in table.output


def test_agent_calls_with_include_usage_are_priced(provider: ProviderServer,
                                                   db_url: str) -> None:
    trace_id = run_agent(provider, db_url, include_usage=True)
    with Trail(db_url) as trail:
        calls = trail.lineage(trace_id).llm_calls
    assert calls
    for call in calls:
        assert call.metadata.token_usage == EXPECTED_USAGE["openai"]
        assert_priced(call.metadata, "openai", "openai")
    (row,) = usage_json(db_url)
    assert (row["unpriced_calls"], row["total_tokens"]) == (
        0, len(calls) * EXPECTED_USAGE["openai"].total_tokens)


# -- which spans are kept, which are folded -------------------------------------------------


def readme_span_methods() -> list[str]:
    """Every method the README's span table names (left column)."""
    start = LLAMAINDEX_SECTION.index("| LlamaIndex span | stored as |")
    rows = LLAMAINDEX_SECTION[start:].split("\n\n", 1)[0].splitlines()[2:]
    return [m for row in rows for m in re.findall(r"`(\w+)`", row.split("|")[1])]


def test_readme_span_table_names_only_methods_that_are_kept() -> None:
    methods = readme_span_methods()
    assert {"query", "retrieve", "postprocess_nodes", "synthesize", "chat", "complete",
            "predict", "get_query_embedding", "call", "run"} <= set(methods)
    # Each one is a method ragtrail's span classification keeps for some component.
    kept = set().union(*(methods for _, _, methods in span_role_bases()), {"run"})
    assert [m for m in methods if m not in kept] == []


def test_internal_spans_are_folded_and_children_rewired(db_url: str) -> None:
    Settings.llm = MockLLM(max_tokens=8)
    index = build_index()
    collector = SpanCollector().attach()
    with Trail(db_url) as trail:
        handler = instrument(trail)
        index.as_query_engine(similarity_top_k=2).query("What is WAL?")
        assert trail.flush(10.0) and handler.last_trace_id is not None
        runs = trail.lineage(handler.last_trace_id).runs
    by_name = {run.name: run for run in runs}
    # The tree the README shows: query -> retrieve -> embedding, synthesize -> predict -> llm.
    assert [(run.kind, run.name) for run in runs] == [
        (RunKind.CHAIN, "RetrieverQueryEngine.query"),
        (RunKind.RETRIEVER, "VectorIndexRetriever.retrieve"),
        (RunKind.EMBEDDING, "KeywordEmbedding.get_query_embedding"),
        (RunKind.CHAIN, "CompactAndRefine.synthesize"),
        (RunKind.CHAIN, "MockLLM.predict"),
        (RunKind.LLM, "MockLLM.complete"),
    ]
    stored = {run.id for run in runs}
    folded = {span_name(s): s for s in collector.spans if s not in stored}
    for name in ("RetrieverQueryEngine._query", "VectorIndexRetriever._retrieve",
                 "CompactAndRefine.get_response"):
        assert name in folded, name
        assert f"`{name}`" in LLAMAINDEX_SECTION or f"`{name.rpartition('.')[2]}`" \
            in LLAMAINDEX_SECTION, name  # the README names it among the folded spans
    # LlamaIndex's own parent of the retriever is the folded _query span; ragtrail's is
    # the nearest stored ancestor, the query.
    retrieve = by_name["VectorIndexRetriever.retrieve"]
    assert span_name(collector.spans[retrieve.id] or "") == "RetrieverQueryEngine._query"
    assert retrieve.parent_id == by_name["RetrieverQueryEngine.query"].id
    collector.check(runs)  # every run: parent = nearest stored ancestor in LlamaIndex's tree
