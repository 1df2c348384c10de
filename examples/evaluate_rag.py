"""Answer questions with the demo's LlamaIndex pipeline, then judge the stored traces.

    python examples/evaluate_rag.py                 # $RAGTRAIL_URL, else ./ragtrail.db
    python examples/evaluate_rag.py /tmp/demo.db    # a SQLite file of your choice

The query engine is the one of ``llamaindex_rag.py`` (the demo's). Each answer is
judged afterwards, from what ragtrail stored (question, answer, the documents that
reached the prompt), by LlamaIndex's own Faithfulness and Relevancy evaluators through
``ragtrail_llamaindex.evaluate``. Offline, the judge is a stand-in LLM that answers
YES when the claim shares most of its words with the context, and reports usage the
way OpenAI's API does: the judge's tokens and cost are real pricing of that usage. With
a real judge, pass ``OpenAI(model="gpt-4o-mini")`` (llama-index-llms-openai) instead.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from llama_index.core.base.llms.types import CompletionResponse, LLMMetadata
from llama_index.core.evaluation import FaithfulnessEvaluator, RelevancyEvaluator
from llama_index.core.llms import CustomLLM
from llama_index.core.llms.callbacks import llm_completion_callback
from llamaindex_rag import build_query_engine
from rich.console import Console

from ragtrail import Trail
from ragtrail.evals import evaluations_table
from ragtrail_llamaindex import evaluate, instrument, uninstrument

QUESTIONS = (
    "How do readers and a writer share an SQLite database in WAL mode?",
    "What does a checkpoint copy back into the database file?",
    "Why do PostgreSQL readers never block writers?",
)
_WORDS = re.compile(r"[a-z]+")
_STOP = {"a", "an", "and", "do", "does", "how", "in", "is", "the", "to", "of", "so", "what",
         "why", "into", "back"}


def _words(text: str) -> set[str]:
    return set(_WORDS.findall(text.lower())) - _STOP


class OverlapJudge(CustomLLM):
    """An offline stand-in for an LLM judge: YES when most words of the claim (the
    text before ``Context:``) appear in the context; OpenAI-shaped usage."""

    model: str = "gpt-4o-mini"

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(model_name=self.model)

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        body = re.split(r"Information:|Query and Response:", prompt)[-1]
        claim, _, context = body.partition("Context:")
        context = context.split("Answer:")[0]
        words = _words(claim)
        verdict = "YES" if words and len(words & _words(context)) >= len(words) / 2 else "NO"
        prompt_tokens = len(prompt.split()) * 4 // 3
        raw = {"id": "judge-1", "model": "gpt-4o-mini-2024-07-18",
               "choices": [{"finish_reason": "stop"}],
               "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 1,
                         "total_tokens": prompt_tokens + 1}}
        return CompletionResponse(text=verdict, raw=raw)

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Any:
        yield self.complete(prompt, formatted, **kwargs)


def main(db_url: str | None = None) -> list[Any]:
    """Answer, judge, print the evaluations and the judges' spend; return the evaluations."""
    with Trail(db_url, app_name="evaluate-rag-demo") as trail:
        engine = build_query_engine()  # indexing is not recorded: the answers are
        handler = instrument(trail)
        trace_ids = []
        try:
            for question in QUESTIONS:
                engine.query(question)
                assert handler.last_trace_id is not None
                trace_ids.append(handler.last_trace_id)
        finally:
            uninstrument(trail)
        judge = OverlapJudge()
        results = [evaluate(trail, evaluator, trace_id)
                   for trace_id in trace_ids
                   for evaluator in (FaithfulnessEvaluator(llm=judge),
                                     RelevancyEvaluator(llm=judge))]
        console = Console(highlight=False, width=160)
        console.print(evaluations_table(results, title="Evaluations of the demo's answers"))
        spent = trail.usage(["model"], request_type="evaluation")
        app = trail.usage(["model"])
        for label, rows in (("judges", spent), ("app (all)", app)):
            for row in rows:
                console.print(f"{label:<12} {row.group['model']}: {row.calls} calls, "
                              f"{row.total_tokens} tokens, ${row.total_cost or 0:f}")
        where = db_url or "sqlite:///./ragtrail.db"
        console.print(f"Inspect with: .venv/bin/ragtrail evals --db {where}")
        return results


if __name__ == "__main__":
    arg = sys.argv[1] if len(sys.argv) > 1 else None
    main(arg if arg is None or "://" in arg else f"sqlite:///{arg}")
