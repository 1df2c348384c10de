"""LlamaIndex agents (workflows): the agent run, its steps, tool calls and LLM calls."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.llms.mock import MockFunctionCallingLLM
from llama_index.core.tools import FunctionTool

from li_support import reset_llamaindex
from ragtrail import Trail
from ragtrail.schemas import RunKind
from ragtrail_llamaindex import instrument


def add(a: int = 2, b: int = 3) -> int:
    """Add two integers."""
    return a + b


@pytest.fixture(autouse=True)
def _clean_llamaindex() -> Iterator[None]:
    yield from reset_llamaindex()


async def test_function_agent_run_with_a_tool_call(sqlite_url: str) -> None:
    trail = Trail(sqlite_url)
    agent = FunctionAgent(tools=[FunctionTool.from_defaults(fn=add)],
                          llm=MockFunctionCallingLLM())
    handler = instrument(trail)
    result = await agent.run("add two numbers")
    assert trail.flush()
    lineage = trail.lineage(handler.last_trace_id)
    names = {run.id: run.name for run in lineage.runs}
    root = lineage.runs[0]
    assert (root.kind, root.name) == (RunKind.AGENT, "FunctionAgent.run")
    assert lineage.question == "add two numbers" and lineage.answer == str(result)

    steps = [r for r in lineage.runs if r.parent_id == root.id]
    assert {r.kind for r in steps} == {RunKind.CHAIN}
    assert {"BaseWorkflowAgent.run_agent_step", "BaseWorkflowAgent.call_tool"} <= {
        r.name for r in steps}
    (tool,) = [r for r in lineage.runs if r.kind is RunKind.TOOL]
    assert (tool.name, names[tool.parent_id]) == ("add",
                                                  "BaseWorkflowAgent.call_tool")
    assert (tool.metadata["tool_name"], tool.inputs, tool.outputs) == (
        "add", {"a": 2, "b": 3}, {"output": "5"})
    calls = [r for r in lineage.runs if r.kind is RunKind.LLM]
    assert len(calls) == len(lineage.llm_calls) == 2
    assert {names[c.parent_id] for c in calls} == {"BaseWorkflowAgent.run_agent_step"}
    (asked,) = calls[0].outputs["tool_calls"]
    assert (asked["name"], asked["arguments"]) == ("add", {"a": 2, "b": 3})
    assert lineage.llm_calls[-1].metadata.output_text == str(result)
    trail.close()
