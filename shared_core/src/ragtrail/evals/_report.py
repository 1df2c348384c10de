"""Human-readable views of evaluations (CLI ``evals``, ``lineage``, ``show``, examples)."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from rich.table import Table
from rich.text import Text

from ..query._evaluations import Evaluation

__all__ = ["evaluation_line", "evaluations_table", "judge_cost", "judge_tokens"]


def judge_tokens(evaluation: Evaluation) -> int | None:
    """The judge's total tokens (None: no judge, or it reported none)."""
    usage = evaluation.judge.token_usage if evaluation.judge else None
    return usage.total_tokens if usage else None


def judge_cost(evaluation: Evaluation) -> Decimal | None:
    """The judge's priced cost (None: no judge, or no known price)."""
    cost = evaluation.judge.cost_metrics if evaluation.judge else None
    return cost.total_cost if cost else None


def _result(evaluation: Evaluation) -> str:
    if evaluation.error is not None:
        return f"error: {evaluation.error}"
    parts = []
    if evaluation.score is not None:
        parts.append(f"{evaluation.score:g}")
    if evaluation.passed is not None:
        parts.append("passed" if evaluation.passed else "failed")
    if evaluation.label is not None:
        parts.append(evaluation.label)
    return " ".join(parts)


def _judge(evaluation: Evaluation) -> str:
    if evaluation.judge is None:
        return "-"
    tokens, cost = judge_tokens(evaluation), judge_cost(evaluation)
    return (f"{evaluation.judge.provider_model or '?'} "
            f"{tokens if tokens is not None else '?'} tok "
            f"{'$' + format(cost, 'f') if cost is not None else 'unpriced'}")


def evaluation_line(evaluation: Evaluation) -> Text:
    """One line: name, result, vendor and source, judge model, tokens and cost."""
    return Text(f"{evaluation.name}: {_result(evaluation)}  [{evaluation.vendor_name}, "
                f"{evaluation.source.value}]  judge {_judge(evaluation)}")


def evaluations_table(rows: Sequence[Evaluation], title: str = "Evaluations") -> Table:
    """Evaluations with their result and their judge's model, tokens and cost."""
    table = Table(title=title, title_justify="left")
    for col in ("created (UTC)", "trace", "name", "result", "vendor", "source", "judge model",
                "judge tokens", "judge cost", "explanation"):
        table.add_column(col, overflow="fold" if col == "trace" else "ellipsis",
                         justify="right" if col.startswith("judge t") else "left")
    for row in rows:
        tokens, cost = judge_tokens(row), judge_cost(row)
        table.add_row(
            row.created_at.strftime("%Y-%m-%d %H:%M:%S"), row.trace_id, row.name, _result(row),
            row.vendor_name, row.source.value,
            (row.judge.provider_model or "-") if row.judge else "-",
            "-" if tokens is None else str(tokens),
            "-" if row.judge is None else ("unpriced" if cost is None else f"${cost:f}"),
            (row.explanation or "")[:60])
    return table
