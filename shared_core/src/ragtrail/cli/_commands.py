"""Read commands: traces, show, lineage, documents, usage, diff, replay.

Each opens the database read-only (:meth:`ragtrail.Trail.open_readonly`) and takes
ids whole or as a unique prefix.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import click

from ._common import db_option, emit, emit_json, json_option, open_trail, parse_when, resolve


def _report() -> ModuleType:
    """The rendering module (rich), loaded only when a view is printed, not for --json."""
    from .. import report

    return report


#: --by choice -> the query's group key (see ragtrail.query.GROUP_KEYS).
_BY_ALIASES = {"app": "app_name", "template": "template", "user": "user", "session": "session",
               "model": "model", "provider": "provider", "day": "day", "app_name": "app_name",
               "request_type": "request_type"}


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
    """List recent traces, newest first (ids whole: copy one into `show`)."""
    with open_trail(db) as trail:
        rows = trail.traces(limit=limit, since=parse_when(since, "--since"),
                            until=parse_when(until, "--until"), app_name=app_name,
                            user_id=user_id, session_id=session_id, status=status, model=model)
    emit(rows, as_json, lambda: _report().traces_table(rows))


@click.command()
@click.argument("run_id")
@db_option
@json_option
def show(run_id: str, db: str | None, as_json: bool) -> None:
    """Print the trace holding RUN_ID (or a unique prefix) as a tree."""
    with open_trail(db) as trail:
        lineage = trail.lineage(resolve(trail, run_id))
    emit(lineage, as_json, lambda: _report().trace_tree(lineage))


@click.command()
@click.argument("run_id")
@db_option
@json_option
def lineage(run_id: str, db: str | None, as_json: bool) -> None:
    """What produced this answer: documents by stage, prompt, model, tokens, cost."""
    with open_trail(db) as trail:
        found = trail.lineage(resolve(trail, run_id))
    emit(found, as_json, lambda: _report().lineage_view(found))


@click.command()
@click.argument("document")
@db_option
@json_option
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Only the newest N answers (default: all).")
@click.option("--min-stage", "min_stage", type=click.Choice(["retrieved", "reranked", "in_prompt"]),
              default=None, help="Only the answers where the document got at least that far "
                                 "(in_prompt: the answers whose prompt it reached).")
def documents(document: str, db: str | None, as_json: bool, limit: int | None,
              min_stage: str | None) -> None:
    """List the answers that used DOCUMENT (a document id or content hash), newest first,
    each with the highest stage the document reached there (retrieved, reranked,
    in_prompt)."""
    from ..errors import NotFoundError

    with open_trail(db) as trail:
        rows = trail.answers_using(document, limit=limit, min_stage=min_stage)
    if not rows and not as_json:
        raise NotFoundError(f"no stored answer used document {document!r}")
    emit(rows, as_json, lambda: _report().documents_table(rows))


@click.command()
@db_option
@json_option
@click.option("--by", "by", multiple=True, default=("model",), show_default=True,
              type=click.Choice(sorted(_BY_ALIASES)),
              help="Group by (repeat for several): model, provider, app, user, session, day, "
                   "template, request_type (ingestion apart from answering).")
@click.option("--since", help="From (ISO date/time, or a duration ago like 7d).")
@click.option("--until", help="Until (ISO date/time, or a duration ago).")
@click.option("--evaluations", "judges", is_flag=True,
              help="The LLM judges' spend alone (their calls are left out otherwise).")
def usage(db: str | None, as_json: bool, by: tuple[str, ...], since: str | None,
          until: str | None, judges: bool) -> None:
    """Tokens and cost, grouped; calls with no known price are counted apart."""
    keys = list(dict.fromkeys(_BY_ALIASES[b] for b in by))
    with open_trail(db) as trail:
        rows = trail.usage(keys, since=parse_when(since, "--since"),
                           until=parse_when(until, "--until"),
                           request_type="evaluation" if judges else None)
    emit(rows, as_json, lambda: _report().usage_table(rows, keys))


@click.command()
@click.argument("trace_a")
@click.argument("trace_b")
@db_option
@json_option
def diff(trace_a: str, trace_b: str, db: str | None, as_json: bool) -> None:
    """Compare two traces: model, parameters, template, documents, tokens, cost, answer."""
    from .._facts import diff_rows

    with open_trail(db) as trail:
        a = trail.lineage(resolve(trail, trace_a))
        b = trail.lineage(resolve(trail, trace_b))
    rows = diff_rows(a, b)
    emit(rows, as_json, lambda: _report().diff_table(rows, a.trace_id, b.trace_id))


@click.command()
@click.argument("run_id")
@db_option
@click.option("--format", "fmt", type=click.Choice(["spec", "request", "openai", "anthropic"]),
              default="spec", show_default=True,
              help="spec: ragtrail's description; request: the body the call's provider "
                   "takes (OpenAI chat completions or Anthropic messages); openai, anthropic: "
                   "that provider's body.")
@json_option
def replay(run_id: str, db: str | None, fmt: str, as_json: bool) -> None:
    """Print, as JSON, what is needed to re-issue the LLM call(s) of RUN_ID exactly.

    The output is JSON with or without --json: one object for one call, a list for
    several (RUN_ID an LLM run selects that call; a trace id, every call of it).
    """
    from .._facts import replay_spec
    from ..conventions.requests import provider_request
    from ..errors import NotFoundError

    with open_trail(db) as trail:
        full = resolve(trail, run_id)
        found = trail.lineage(full)
    calls = [c for c in found.llm_calls if c.run_id == full] or found.llm_calls
    if not calls:
        raise NotFoundError(f"trace {found.trace_id} has no LLM call to replay")
    specs: Any
    if fmt == "spec":
        specs = [replay_spec(c) for c in calls]
    else:
        try:
            specs = [provider_request(c.metadata, None if fmt == "request" else fmt)
                     for c in calls]
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
    emit_json(specs[0] if len(specs) == 1 else specs)
