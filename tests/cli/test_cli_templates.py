"""`ragtrail usage --by template` names templates (issue 20, point 8).

A template is shown by the name its framework gives it (a LangChain prompt's own name or
LangChain Hub repo, a LlamaIndex prompt's type), else by its first line, beside a short
hash; ``--json`` and the API keep the full hash as the group value.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from click.testing import CliRunner
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate, PromptTemplate
from llama_index.core import PromptTemplate as LIPromptTemplate

from lc_support import FakeOpenAIChat, build_rag_chain
from li_support import UsageLLM
from ragtrail import Trail
from ragtrail.cli import cli
from ragtrail.schemas import content_hash
from ragtrail_langchain import RagtrailCallbackHandler
from ragtrail_llamaindex import instrument, uninstrument

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))

import llamaindex_rag

CUSTOM_LI = "Summarise in one line:\n{text}"


def test_usage_by_template_shows_names_and_first_lines(sqlite_url: str) -> None:
    with Trail(sqlite_url) as trail:
        handler = RagtrailCallbackHandler(trail)
        # LangChain: a prompt the user named, and one as LangChain Hub's pull returns it.
        named = ChatPromptTemplate.from_messages(
            [("system", "Answer briefly."), ("human", "{question}")]
        ).with_config(run_name="support-answer")
        (named | FakeOpenAIChat() | StrOutputParser()).invoke(
            {"question": "What is WAL?"}, config={"callbacks": [handler]})
        hub = PromptTemplate.from_template("You are an assistant for question-answering.\n"
                                           "Question: {question}", metadata={
                                               "lc_hub_owner": "rlm", "lc_hub_repo": "rag-prompt",
                                               "lc_hub_commit_hash": "50442af1"})
        (hub | FakeOpenAIChat() | StrOutputParser()).invoke(
            {"question": "What is WAL?"}, config={"callbacks": [handler]})
        # An unnamed LangChain prompt: shown by its first line.
        build_rag_chain().invoke("How does WAL work?", config={"callbacks": [handler]})
        # LlamaIndex: the query engine's own QA template (prompt type text_qa) and a
        # template of the user's own (type custom: its first line).
        engine = llamaindex_rag.build_query_engine()
        instrument(trail)
        try:
            engine.query(llamaindex_rag.QUESTION)
            UsageLLM().predict(LIPromptTemplate(CUSTOM_LI), text="WAL lets readers continue.")
        finally:
            uninstrument(trail)
        assert trail.flush(10)

    result = CliRunner(env={"COLUMNS": "200"}).invoke(
        cli, ["usage", "--by", "template", "--db", sqlite_url])
    assert result.exit_code == 0, result.output
    text = result.stdout
    rows = json.loads(CliRunner().invoke(
        cli, ["usage", "--by", "template", "--db", sqlite_url, "--json"]).stdout)
    names = {row["template_name"]: row["group"]["template"] for row in rows}
    assert set(names) == {"support-answer", "rlm/rag-prompt",
                          "system: Answer from the context only. Cite sources.",
                          "text_qa", "Summarise in one line:"}
    assert names["Summarise in one line:"] == content_hash(CUSTOM_LI)
    for name, template_hash in names.items():
        assert len(template_hash) == 64  # JSON keeps the full hash
        assert f"{name} ({template_hash[:12]})" in text, name
    assert not any(template_hash in text for template_hash in names.values())
