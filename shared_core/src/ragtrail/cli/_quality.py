"""``ragtrail quality`` (how complete the trail is) and ``ragtrail drift`` (what changed
between two windows; exit status 3 when something moved beyond the thresholds)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click

from ._common import db_option, emit, json_option, open_trail, parse_when

__all__ = ["DRIFT_EXIT", "drift", "quality"]

#: Exit status of ``ragtrail drift`` when a finding is beyond its thresholds.
DRIFT_EXIT = 3

#: --by choice -> group key.
_BY = {"app": "app_name", "model": "model", "provider": "provider", "template": "template"}


_by_option = click.option("--by", "by", multiple=True, default=("app",), show_default=True,
                          type=click.Choice(sorted(_BY)),
                          help="Group by (repeat for several): app, model, provider, template.")


@click.command()
@db_option
@json_option
@click.option("--since", help="From (ISO date/time, or a duration ago like 7d). Default: all.")
@click.option("--until", help="Until (ISO date/time, or a duration ago).")
@_by_option
def quality(db: str | None, as_json: bool, since: str | None, until: str | None,
            by: tuple[str, ...]) -> None:
    """How complete the trail is: each figure a count out of a denominator, with ids of
    examples to open with `ragtrail show`."""
    keys = list(dict.fromkeys(_BY[b] for b in by))
    with open_trail(db) as trail:
        report = trail.quality(since=parse_when(since, "--since"),
                               until=parse_when(until, "--until"), group_by=keys)

    def view() -> Any:
        from .._quality_views import quality_view

        return quality_view(report)

    emit(report, as_json, view)


def parse_window(value: str, name: str) -> tuple[datetime | None, datetime | None]:
    """``14d..7d`` (from 14 days ago to 7 days ago), ``7d`` (the last 7 days), or ISO
    bounds ``2026-11-01..2026-11-08``; either side of ``..`` may be empty (open)."""
    start, sep, end = value.partition("..")
    return (parse_when(start.strip() or None, name),
            parse_when(end.strip() or None, name) if sep else None)


@click.command()
@db_option
@json_option
@click.option("--baseline", required=True,
              help="Baseline window: START..END, each an ISO date/time or a duration ago "
                   "(14d..7d).")
@click.option("--current", default="7d", show_default=True,
              help="Current window: START[..END] (7d = the last 7 days).")
@_by_option
@click.option("--confidence", type=click.FloatRange(0.5, 1, max_open=True),
              help="Confidence a change needs (1 - p-value; default 0.99).")
@click.option("--min-samples", type=click.IntRange(min=1),
              help="Observations each window needs (default 30).")
@click.option("--all", "show_all", is_flag=True, help="Show every comparison, not only drift.")
def drift(db: str | None, as_json: bool, baseline: str, current: str, by: tuple[str, ...],
          confidence: float | None, min_samples: int | None, show_all: bool) -> None:
    """What changed between a baseline window and the current one: model and version
    mix, prompt templates, parameters, retrieval scores and documents, tokens, cost,
    latency, errors, abandonment, evaluation scores. Exits 3 when something moved beyond
    the thresholds (for CI gates)."""
    from ..query import DriftThresholds

    keys = list(dict.fromkeys(_BY[b] for b in by))
    overrides = {k: v for k, v in (("confidence", confidence), ("min_samples", min_samples))
                 if v is not None}
    with open_trail(db) as trail:
        report = trail.drift(parse_window(baseline, "--baseline"),
                             parse_window(current, "--current"), group_by=keys,
                             thresholds=DriftThresholds(**overrides))
    payload = {"drifted": report.drifted, "findings": report.findings,
               **report.model_dump(mode="json")}

    def view() -> Any:
        from .._quality_views import drift_view

        return drift_view(report, show_all=show_all)

    emit(payload, as_json, view)
    if report.drifted:
        raise SystemExit(DRIFT_EXIT)
