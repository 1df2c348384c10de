"""``ragtrail evals``: evaluations stored with the traces they judge.

(``ragtrail evaluate``, which runs LlamaIndex's evaluators, comes from the
``ragtrail-llamaindex`` package through the ``ragtrail.commands`` entry point group.)
"""

from __future__ import annotations

import json
from typing import IO, TYPE_CHECKING, Any

import click

from ._common import db_option, emit, json_option, open_trail, parse_when

if TYPE_CHECKING:
    from ..query import Lineage

#: ``EvaluationSource``'s values, spelt here so that listing the commands (``--help``)
#: does not import the query layer (tests/cli/test_cli.py checks they agree).
SOURCES = ("human", "llm", "code")


@click.command("evals")
@click.argument("trace_id", required=False)
@db_option
@json_option
@click.option("--name", help="Only evaluations with this name (e.g. faithfulness).")
@click.option("--vendor", "vendor_name", help="Only this vendor (LlamaIndex, Ragas, ...).")
@click.option("--source", type=click.Choice(SOURCES),
              help="Only evaluations by a person, an LLM judge or code.")
@click.option("--judge-provider", help="Only evaluations whose judge used this provider.")
@click.option("--min-judge-tokens", type=click.IntRange(min=0),
              help="Only evaluations whose judge used at least this many tokens.")
@click.option("--since", help="From (ISO date/time, or a duration ago like 7d).")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
def evals(trace_id: str | None, db: str | None, as_json: bool, name: str | None,
          vendor_name: str | None, source: str | None, judge_provider: str | None,
          min_judge_tokens: int | None, since: str | None, limit: int) -> None:
    """List evaluations (of TRACE_ID, or all), newest first, with their judges' cost."""
    from ..evals._report import evaluations_table

    with open_trail(db) as trail:
        rows = trail.evaluations(
            trace_id, name=name, vendor_name=vendor_name, source=source,
            judge_provider=judge_provider, min_judge_tokens=min_judge_tokens,
            since=parse_when(since, "--since"), limit=limit)
    emit(rows, as_json, lambda: evaluations_table(rows))


# -- export and import -------------------------------------------------------------------

#: ``record_type`` of an evaluation line in an export (run records have none).
EVALUATION_RECORD = "evaluation"


def export_evaluations(trail: Any, lineage: Lineage, output: IO[str]) -> int:
    """Write the trace's evaluations, each after its judge's trace; returns lines written."""
    from ..errors import NotFoundError
    from ._io import records_of

    count = 0
    for evaluation in lineage.evaluations:
        if evaluation.judge_trace_id is not None:
            try:
                judge = trail.lineage(evaluation.judge_trace_id)
            except NotFoundError:
                judge = None
            for record in records_of(judge) if judge is not None else ():
                output.write(record.model_dump_json() + "\n")
                count += 1
        line = {"record_type": EVALUATION_RECORD, **evaluation.model_dump(mode="json")}
        output.write(json.dumps(line) + "\n")
        count += 1
    return count


def is_evaluation_line(data: Any) -> bool:
    """True for an evaluation line of an export."""
    return isinstance(data, dict) and data.get("record_type") == EVALUATION_RECORD


def import_evaluation(trail: Any, data: dict[str, Any]) -> int:
    """Store one exported evaluation as it was (id, time, judge summary); returns 1."""
    from ..evals._write import prepare, write
    from ..query import Evaluation

    body = {k: v for k, v in data.items() if k != "record_type"}
    evaluation = Evaluation.model_validate(body)
    fields = prepare(
        evaluation.run_id, evaluation.name, score=evaluation.score, label=evaluation.label,
        passed=evaluation.passed, source=evaluation.source,
        vendor_name=evaluation.vendor_name, vendor_version=evaluation.vendor_version,
        document_id=evaluation.document_id, judge_trace_id=evaluation.judge_trace_id,
        evaluation_id=evaluation.id, error=evaluation.error or (
            "" if evaluation.score is None and evaluation.label is None
            and evaluation.passed is None else None))
    judge = evaluation.judge.model_dump(mode="json", exclude_none=True) \
        if evaluation.judge else None
    write(trail.store.engine, fields, explanation=evaluation.explanation,
          metadata=evaluation.metadata, created_at=evaluation.created_at, judge=judge)
    return 1
