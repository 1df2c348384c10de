"""Terminal views of the quality and drift reports (rich; loaded only to print them)."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.syntax import Syntax
from rich.text import Text

from .query import DriftReport, QualityReport
from .report import FitTable, _Column

__all__ = ["drift_view", "quality_view"]


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _group_title(group: dict[str, Any]) -> str:
    shown = ", ".join(f"{k}={v}" for k, v in group.items() if v is not None)
    return shown or "all"


def quality_view(report: QualityReport) -> Group:
    """One table per group: figure, count of denominator, share, example ids."""
    parts: list[Any] = []
    window = f"{report.since or 'the beginning'} to {report.until or 'now'}"
    parts.append(Text(f"Trail quality from {window}", style="bold"))
    for group in report.groups:
        figures = group.figures
        styles = ["red" if f.lower_is_better and f.count else
                  ("yellow" if not f.lower_is_better and f.share is not None and f.share < 1
                   else "") for f in figures]
        parts.append(FitTable(_group_title(group.group), [
            _Column("figure", [f.description for f in figures], least=20, flex=True),
            _Column("count", [f"{f.count:,} / {f.denominator:,}" for f in figures],
                    justify="right", least=9),
            _Column("share", [_share(f.share) for f in figures], justify="right", least=6),
            _Column("e.g. (ragtrail show ID)", [f.example_ids[0] if f.example_ids else "-"
                                                for f in figures], drop=1, is_id=True),
        ], row_styles=styles))
        if group.schema_versions:
            versions = ", ".join(f"{v}: {n:,}" for v, n in sorted(group.schema_versions.items()))
            parts.append(Text(f"runs per schema version: {versions}", style="dim"))
    if not report.groups:
        parts.append(Text("nothing stored in this window"))
    return Group(*parts)


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.4g}"
    if isinstance(value, dict):
        top = sorted(value.items(), key=lambda kv: -kv[1])[:3]
        return ", ".join(f"{k} {v:.0%}" for k, v in top)
    return "-" if value is None else str(value)


def _change(kind: str, value: float | None) -> str:
    if value is None:
        return "-"
    if kind == "relative":
        return f"{value:+.0%}"
    if kind in ("distance", "ks"):
        return f"{kind} {value:.2f}"
    return f"{value:+.3g}"


def drift_view(report: DriftReport, *, show_all: bool = False) -> Group:
    """Findings (or every comparison) as a table, then the template diffs."""
    rows = report.comparisons if show_all else report.findings
    base, cur = report.baseline, report.current
    parts: list[Any] = [Text(
        f"Baseline {base[0] or '-'} .. {base[1] or 'now'}  against  current "
        f"{cur[0] or '-'} .. {cur[1] or 'now'}", style="bold")]
    if not rows:
        parts.append(Text(f"no drift beyond the thresholds ({len(report.comparisons)} "
                          f"comparisons)", style="green"))
        return Group(*parts)
    parts.append(FitTable("Drift" if not show_all else "Comparisons", [
        _Column("", ["!" if r.drifted else " " for r in rows], least=1),
        _Column("what moved", [r.message for r in rows], least=24, flex=True),
        _Column("group", [_group_title(r.group) for r in rows], drop=3, least=6),
        _Column("change", [_change(r.change_kind, r.change) for r in rows], justify="right",
                least=8),
        _Column("confidence", [_share(r.confidence) for r in rows], justify="right", least=6),
        _Column("n", [f"{r.baseline_count:,}/{r.current_count:,}" for r in rows], drop=4,
                justify="right"),
        _Column("baseline e.g.", [r.baseline_examples[0] if r.baseline_examples else "-"
                                  for r in rows], drop=2, is_id=True),
        _Column("current e.g.", [r.current_examples[0] if r.current_examples else "-"
                                 for r in rows], drop=1, is_id=True),
    ], row_styles=["yellow" if r.drifted else "" for r in rows]))
    for r in rows:
        if r.diff:
            parts.append(Text(f"template {r.subject}:", style="bold"))
            parts.append(Syntax(r.diff, "diff", theme="ansi_dark", background_color="default"))
    return Group(*parts)
