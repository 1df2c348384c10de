"""Read commands: traces, show, lineage, documents, usage, diff, replay."""

from __future__ import annotations

from typing import Any

import click

from .. import report
from ..errors import NotFoundError
from ..query import GROUP_KEYS
from ._common import db_option, emit, json_option, open_trail, parse_when

_BY_ALIASES = {"app": "app_name", "template": "template", "user": "user", "session": "session",
               "model": "model", "provider": "provider", "day": "day", "app_name": "app_name"}


@click.command()
@db_option
@json_option
@click.option("--limit", default=20, show_default=True, help="How many traces.")
@click.option("--since", help="From (ISO date/time, or a duration ago like 7d).")
@click.option("--until", help="Until (ISO date/time, or a duration ago).")
@click.option("--app", "app_name", help="Only this application.")
@click.option("--user", "user_id", help="Only this user id (matched by its keyed hash).")
@click.option("--session", "session_id", help="Only this session.")
@click.option("--status", type=click.Choice(["ok", "error", "cancelled", "abandoned"]))
@click.option("--model", help="Only traces with an LLM call to this model.")
def traces(db: str | None, as_json: bool, limit: int, since: str | None, until: str | None,
           app_name: str | None, user_id: str | None, session_id: str | None,
           status: str | None, model: str | None) -> None:
    """List recent traces, newest first."""
    with open_trail(db) as trail:
        rows = trail.traces(limit=limit, since=parse_when(since, "--since"),
                            until=parse_when(until, "--until"), app_name=app_name,
                            user_id=user_id, session_id=session_id, status=status, model=model)
    emit(rows, as_json, lambda: report.traces_table(rows))


@click.command()
@click.argument("run_id")
@db_option
@json_option
def show(run_id: str, db: str | None, as_json: bool) -> None:
    """Print the trace holding RUN_ID as a tree, with LLM calls and documents."""
    with open_trail(db) as trail:
        lineage = trail.lineage(run_id)
    emit(lineage, as_json, lambda: report.trace_tree(lineage))


@click.command()
@click.argument("run_id")
@db_option
@json_option
def lineage(run_id: str, db: str | None, as_json: bool) -> None:
    """What produced this answer: documents by stage, prompt, model, tokens, cost."""
    with open_trail(db) as trail:
        found = trail.lineage(run_id)
    emit(found, as_json, lambda: report.lineage_view(found))


@click.command()
@click.argument("document")
@db_option
@json_option
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Only the newest N answers (default: all).")
def documents(document: str, db: str | None, as_json: bool, limit: int | None) -> None:
    """List the answers that used DOCUMENT (a document id or content hash), newest first."""
    with open_trail(db) as trail:
        rows = trail.answers_using(document, limit=limit)
    if not rows and not as_json:
        raise NotFoundError(f"no stored answer used document {document!r}")
    emit(rows, as_json, lambda: report.documents_table(rows))


@click.command()
@db_option
@json_option
@click.option("--by", "by", multiple=True, default=("model",), show_default=True,
              type=click.Choice(sorted(_BY_ALIASES)),
              help="Group by (repeat for several): model, provider, app, user, session, day, "
                   "template.")
@click.option("--since", help="From (ISO date/time, or a duration ago like 7d).")
@click.option("--until", help="Until (ISO date/time, or a duration ago).")
@click.option("--evaluations", "judges", is_flag=True,
              help="The LLM judges' spend alone (their calls are left out otherwise).")
def usage(db: str | None, as_json: bool, by: tuple[str, ...], since: str | None,
          until: str | None, judges: bool) -> None:
    """Tokens and cost, grouped; calls with no known price are counted apart."""
    keys = [_BY_ALIASES[b] for b in by]
    unknown = [k for k in keys if k not in GROUP_KEYS]
    if unknown:  # pragma: no cover - the Choice above prevents it
        raise click.BadParameter(f"unknown group {unknown}")
    with open_trail(db) as trail:
        rows = trail.usage(keys, since=parse_when(since, "--since"),
                           until=parse_when(until, "--until"),
                           request_type="evaluation" if judges else None)
    emit(rows, as_json, lambda: report.usage_table(rows, keys))


@click.command()
@click.argument("trace_a")
@click.argument("trace_b")
@db_option
@json_option
def diff(trace_a: str, trace_b: str, db: str | None, as_json: bool) -> None:
    """Compare two traces: model, parameters, template, documents, tokens, cost, answer."""
    with open_trail(db) as trail:
        a, b = trail.lineage(trace_a), trail.lineage(trace_b)
    rows = report.diff_rows(a, b)
    emit(rows, as_json, lambda: report.diff_table(rows, a.trace_id, b.trace_id))


@click.command()
@click.argument("run_id")
@db_option
def replay(run_id: str, db: str | None) -> None:
    """Print, as JSON, what is needed to re-issue the LLM call(s) of RUN_ID exactly."""
    import json

    with open_trail(db) as trail:
        found = trail.lineage(run_id)
    calls = [c for c in found.llm_calls if c.run_id == run_id] or found.llm_calls
    if not calls:
        raise NotFoundError(f"trace {found.trace_id} has no LLM call to replay")
    specs: Any = [report.replay_spec(c) for c in calls]
    click.echo(json.dumps(specs[0] if len(specs) == 1 else specs, indent=2, default=str))
