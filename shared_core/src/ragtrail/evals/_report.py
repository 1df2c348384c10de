"""Human-readable views of evaluations (CLI ``evals``, ``lineage``, ``show``, examples)."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from rich.text import Text

from ..query._evaluations import Evaluation
from ..report import FitTable, _Column, _short

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


def evaluations_table(rows: Sequence[Evaluation], title: str = "Evaluations") -> FitTable:
    """Evaluations with their result and their judge's model, tokens and cost.

    Fitted to the width it is shown at (see :class:`ragtrail.report.FitTable`): trace ids
    are never wrapped or cut, nor are the judge's tokens and cost (a cut cost means
    nothing: the column is left out instead); on a narrow screen the creation time,
    source and judge columns are left out before the name, result, vendor and
    explanation.
    """
    def cost(row: Evaluation) -> str:
        value = judge_cost(row)
        return "-" if row.judge is None else ("unpriced" if value is None else f"${value:f}")

    def tokens(row: Evaluation) -> str:
        value = judge_tokens(row)
        return "-" if value is None else str(value)

    return FitTable(title, [
        _Column("created (UTC)", [r.created_at.strftime("%Y-%m-%d %H:%M:%S") for r in rows],
                drop=7, least=10),
        _Column("trace", [r.trace_id for r in rows], is_id=True),
        _Column("name", [r.name for r in rows], least=12),
        _Column("result", [_result(r) for r in rows], least=12),
        _Column("vendor", [r.vendor_name for r in rows], drop=2, least=10),
        _Column("source", [r.source.value for r in rows], drop=6, least=6),
        _Column("judge model", [(r.judge.provider_model or "-") if r.judge else "-"
                                for r in rows], drop=3, least=10),
        _Column("judge tokens", [tokens(r) for r in rows], drop=5, justify="right", whole=True),
        _Column("judge cost", [cost(r) for r in rows], drop=4, justify="right", whole=True),
        _Column("explanation", [_short(r.explanation or "", 120) for r in rows], drop=1, least=12,
                flex=True),
    ])
