"""``ragtrail evaluate``: LlamaIndex's evaluators judge stored traces with a real client.

Registered into the ``ragtrail`` command line through the ``ragtrail.commands`` entry
point group (the core never imports LlamaIndex). The judge clients come with the extra
``ragtrail-llamaindex[judges]``.
"""

from __future__ import annotations

import json
import os
import sys
from decimal import Decimal
from typing import IO, Any

import click

from ragtrail.cli._common import db_option, emit, json_option, open_trail_for_write, parse_when
from ragtrail.errors import ConfigError
from ragtrail.evals import Evaluation

__all__ = ["evaluate_command"]

METRICS = ("faithfulness", "relevancy", "correctness")


def _judge_llm(model: str, base_url: str | None, provider: str | None) -> Any:
    """A real LlamaIndex client: Anthropic for claude models (or --judge-provider
    anthropic), else OpenAI, or OpenAILike for a model OpenAI does not list (a local
    OpenAI-compatible server)."""
    provider = provider or ("anthropic" if model.startswith("claude") else "openai")
    try:
        if provider == "anthropic":
            from llama_index.llms.anthropic import Anthropic

            key = os.environ.get("ANTHROPIC_API_KEY") or ("unused" if base_url else None)
            if key is None:
                raise ConfigError("set ANTHROPIC_API_KEY (or give --judge-base-url)")
            return Anthropic(model=model, base_url=base_url, api_key=key, temperature=0.0,
                             max_retries=2, timeout=60)
        from llama_index.llms.openai import OpenAI
        from llama_index.llms.openai.utils import ALL_AVAILABLE_MODELS

        key = os.environ.get("OPENAI_API_KEY") or ("unused" if base_url else None)
        if key is None:
            raise ConfigError("set OPENAI_API_KEY (or give --judge-base-url)")
        if model in ALL_AVAILABLE_MODELS:
            return OpenAI(model=model, api_base=base_url, api_key=key, temperature=0.0,
                          max_retries=2, timeout=60)
        from llama_index.llms.openai_like import OpenAILike

        return OpenAILike(model=model, api_base=base_url, api_key=key, temperature=0.0,
                          is_chat_model=True, context_window=32_000, max_retries=2,
                          timeout=60)
    except ImportError as exc:
        raise ConfigError(f"the judge client is not installed ({exc.name}); "
                          "install ragtrail-llamaindex[judges]") from None


def _evaluator(metric: str, llm: Any) -> Any:
    from llama_index.core.evaluation import (
        CorrectnessEvaluator,
        FaithfulnessEvaluator,
        RelevancyEvaluator,
    )

    kinds = {"faithfulness": FaithfulnessEvaluator, "relevancy": RelevancyEvaluator,
             "correctness": CorrectnessEvaluator}
    return kinds[metric](llm=llm)


def _references(source: IO[str] | None) -> dict[str, str]:
    """``{"trace id": "reference answer", ...}``, or JSON lines of
    ``{"trace_id": ..., "reference": ...}``."""
    if source is None:
        return {}
    text = source.read()
    try:
        data = json.loads(text)
    except ValueError:
        try:
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
            data = {str(row["trace_id"]): str(row["reference"]) for row in rows}
        except (ValueError, KeyError, TypeError):
            raise ConfigError("--reference-file must hold a JSON object {trace_id: reference}"
                              " or JSON lines {\"trace_id\": ..., \"reference\": ...}") from None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ConfigError("--reference-file must map trace ids to reference answers (text)")
    return {str(k): v for k, v in data.items()}


def summary_rows(metric: str, results: list[Evaluation]) -> list[dict[str, Any]]:
    """One row per metric: counts, mean score, judge tokens and cost."""
    from ragtrail.evals._report import judge_cost, judge_tokens

    scores = [r.score for r in results if r.score is not None]
    costs = [judge_cost(r) for r in results]
    known = [c for c in costs if c is not None]
    return [{
        "metric": metric,
        "evaluated": len(results),
        "passed": sum(1 for r in results if r.passed is True),
        "failed": sum(1 for r in results if r.passed is False),
        "errors": sum(1 for r in results if r.error is not None),
        "mean_score": sum(scores) / len(scores) if scores else None,
        "judge_tokens": sum(judge_tokens(r) or 0 for r in results),
        "judge_cost": sum(known, Decimal(0)) if known else None,
        "unpriced_judges": sum(1 for r in results if r.judge is not None and
                               judge_cost(r) is None),
    }]


def _summary_table(rows: list[dict[str, Any]]) -> Any:
    from rich.table import Table

    table = Table(title="Evaluation summary", title_justify="left")
    for col in ("metric", "evaluated", "passed", "failed", "errors", "mean score",
                "judge tokens", "judge cost"):
        table.add_column(col, justify="left" if col == "metric" else "right")
    for row in rows:
        cost = row["judge_cost"]
        unpriced = f" (+{row['unpriced_judges']} unpriced)" if row["unpriced_judges"] else ""
        table.add_row(row["metric"], str(row["evaluated"]), str(row["passed"]),
                      str(row["failed"]), str(row["errors"]),
                      "-" if row["mean_score"] is None else f"{row['mean_score']:.3f}",
                      str(row["judge_tokens"]),
                      ("unpriced" if cost is None else f"${cost:f}") + unpriced)
    return table


@click.command("evaluate")
@click.argument("trace_ids", nargs=-1)
@db_option
@json_option
@click.option("--metric", type=click.Choice(METRICS), required=True,
              help="LlamaIndex evaluator to run.")
@click.option("--since", help="Evaluate the traces started since (ISO or a duration like 1d).")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True,
              help="With --since: at most this many traces (newest first).")
@click.option("--judge", "judge_model", required=True, help="The judge's model name.")
@click.option("--judge-base-url", help="An OpenAI-compatible (or Anthropic) server's URL.")
@click.option("--judge-provider", type=click.Choice(["openai", "anthropic"]),
              help="Client to use (default: anthropic for claude-* models, else openai).")
@click.option("--reference-file", type=click.File("r"),
              help="Reference answers for correctness: JSON {trace_id: reference}.")
@click.option("--keep-previous", is_flag=True, help="Keep earlier results of this metric.")
def evaluate_command(trace_ids: tuple[str, ...], db: str | None, as_json: bool, metric: str,
                     since: str | None, limit: int, judge_model: str,
                     judge_base_url: str | None, judge_provider: str | None,
                     reference_file: IO[str] | None, keep_previous: bool) -> None:
    """Judge stored traces with a LlamaIndex evaluator; store and summarise the results."""
    from rich.console import Console
    from rich.progress import Progress

    from ._evaluate import evaluate

    if bool(trace_ids) == bool(since):
        raise click.UsageError("give either TRACE_ID... or --since")
    references = _references(reference_file)
    if metric == "correctness" and not references:
        raise click.UsageError("correctness needs --reference-file")
    llm = _judge_llm(judge_model, judge_base_url, judge_provider)
    results: list[Evaluation] = []
    with open_trail_for_write(db) as trail:
        ids = list(trace_ids) or [t.trace_id for t in trail.traces(
            limit=limit, since=parse_when(since, "--since"))]
        if metric == "correctness":
            ids = [i for i in ids if i in references]
        progress = Progress(console=Console(stderr=True), transient=not sys.stderr.isatty())
        with progress:
            task = progress.add_task(f"{metric} with {judge_model}", total=len(ids))
            for trace_id in ids:
                results.append(evaluate(trail, _evaluator(metric, llm), trace_id, name=metric,
                                        reference=references.get(trace_id),
                                        keep_previous=keep_previous))
                progress.advance(task)
    rows = summary_rows(metric, results)
    emit(rows, as_json, lambda: _summary_table(rows))
