"""Moving data: export, import and purge."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import IO, Any

import click

from ..errors import ConfigError
from ..query import Lineage
from ..schemas import CapturedRun, Document, DocumentLink, SchemaError, registry
from ._common import db_option, open_trail, parse_age, parse_when
from ._interop import interop_export, interop_options

_EXPORT_BATCH = 500


def records_of(lineage: Lineage) -> Iterator[CapturedRun]:
    """The stored records of a trace, one per run, as they were written."""
    llm = {call.run_id: call.metadata for call in lineage.llm_calls}
    uses: dict[str, list[Any]] = {}
    for use in lineage.documents:
        uses.setdefault(use.run_id, []).append(use)
    for run in lineage.runs:
        docs: dict[str, Document] = {}
        links = []
        for use in uses.get(run.id, []):
            docs.setdefault(use.content_hash, Document(
                document_id=use.document_id, content_hash=use.content_hash,
                content=use.content, metadata=use.metadata))
            links.append(DocumentLink(
                run_id=run.id, trace_id=run.trace_id, content_hash=use.content_hash,
                document_id=use.document_id, stage=use.stage, rank=use.rank, score=use.score,
                input_rank=use.input_rank))
        yield CapturedRun(run=run, llm=llm.get(run.id), documents=list(docs.values()),
                          links=links)


@click.command("export")
@click.argument("trace_ids", nargs=-1)
@db_option
@click.option("--format", "fmt", type=click.Choice(["jsonl"]), default="jsonl", show_default=True)
@click.option("--since", help="Only traces started since (ISO date/time or duration ago).")
@click.option("--output", "-o", type=click.File("w"), default="-", help="File (default stdout).")
@interop_options
def export_cmd(trace_ids: tuple[str, ...], db: str | None, fmt: str, since: str | None,
               output: IO[str], **interop: Any) -> None:
    """Write traces as JSON lines (one stored record per line) for `ragtrail import`,
    or send them as OTLP (--otlp) or OpenLineage events (--openlineage)."""
    if interop_export(db, trace_ids, since, **interop):
        return
    count = 0
    with open_trail(db) as trail:
        ids = list(trace_ids) or [
            t.trace_id for t in trail.traces(limit=10**9, since=parse_when(since, "--since"))]
        for trace_id in ids:
            for record in records_of(trail.lineage(trace_id)):
                output.write(record.model_dump_json() + "\n")
                count += 1
    click.echo(f"exported {count} records from {len(ids)} traces", err=True)


@click.command("import")
@click.argument("source", type=click.File("r"), default="-")
@db_option
def import_cmd(source: IO[str], db: str | None) -> None:
    """Read JSON lines written by `ragtrail export` (any known schema version) into --db."""
    batch: list[CapturedRun] = []
    count = 0
    with open_trail_for_write(db) as trail:
        for number, line in enumerate(source, start=1):
            if not line.strip():
                continue
            try:
                batch.append(registry.validate(json.loads(line)))
            except (ValueError, SchemaError) as exc:
                raise ConfigError(f"line {number}: not a ragtrail record: {exc}") from None
            if len(batch) >= _EXPORT_BATCH:
                trail.store.write_batch(batch)
                count += len(batch)
                batch = []
        if batch:
            trail.store.write_batch(batch)
            count += len(batch)
    click.echo(f"imported {count} records", err=True)


def open_trail_for_write(db: str | None) -> Any:
    """A Trail that may create the database (import target)."""
    from ..trail import Trail

    return Trail(db, background=False)


@click.command()
@db_option
@click.option("--older-than", "older_than", required=True, help="Age, e.g. 30d, 12h.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def purge(db: str | None, older_than: str, yes: bool) -> None:
    """Delete traces whose root started more than --older-than ago (retention)."""
    cutoff = datetime.now(timezone.utc) - parse_age(older_than)
    if not yes and sys.stdin.isatty():
        click.confirm(f"Delete every trace started before {cutoff:%Y-%m-%d %H:%M} UTC?",
                      abort=True)
    with open_trail(db) as trail:
        removed = trail.store.purge(before=cutoff)
    click.echo(f"deleted {removed} traces started before {cutoff.isoformat()}")
