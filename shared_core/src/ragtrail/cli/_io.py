"""Moving data: export, import and purge."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any

import click

from ._common import (
    db_option,
    emit_json,
    json_option,
    open_trail,
    open_trail_for_write,
    parse_when,
    resolve,
)
from ._interop import interop_export, interop_options

if TYPE_CHECKING:
    from ..query import Lineage
    from ..schemas import CapturedRun

_EXPORT_BATCH = 500


def records_of(lineage: Lineage) -> Iterator[CapturedRun]:
    """The stored records of a trace, one per run, as they were written."""
    from ..schemas import CapturedRun, Document, DocumentLink

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
@json_option
@click.option("--format", "fmt", type=click.Choice(["jsonl"]), default="jsonl", show_default=True)
@click.option("--since", help="Only traces started since (ISO date/time or duration ago).")
@click.option("--output", "-o", type=click.File("w"), default="-", help="File (default stdout).")
@interop_options
def export_cmd(trace_ids: tuple[str, ...], db: str | None, as_json: bool, fmt: str,
               since: str | None, output: IO[str], **interop: Any) -> None:
    """Write traces as JSON lines (one stored record per line) for `ragtrail import`,
    or send them as OTLP (--otlp) or OpenLineage events (--openlineage).

    The output is JSON lines with or without --json; the count goes to stderr.
    """
    if interop_export(db, trace_ids, since, **interop):
        return
    from ._evals import export_evaluations

    count = 0
    with open_trail(db) as trail:
        ids = [resolve(trail, given) for given in trace_ids] or [
            t.trace_id for t in trail.traces(limit=10**9, since=parse_when(since, "--since"))]
        for trace_id in ids:
            lineage = trail.lineage(trace_id)
            for record in records_of(lineage):
                output.write(record.model_dump_json() + "\n")
                count += 1
            count += export_evaluations(trail, lineage, output)
    click.echo(f"exported {count} records from {len(ids)} traces", err=True)


@click.command("import")
@click.argument("source", type=click.File("r"), default="-")
@db_option
@json_option
def import_cmd(source: IO[str], db: str | None, as_json: bool) -> None:
    """Read JSON lines written by `ragtrail export` (any known schema version) into --db.

    Creates the database and its tables when they do not exist yet.
    """
    from ..errors import ConfigError
    from ..schemas import SchemaError, registry
    from ._evals import import_evaluation, is_evaluation_line

    batch: list[CapturedRun] = []
    count = 0
    with open_trail_for_write(db) as trail:
        for number, line in enumerate(source, start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                if is_evaluation_line(data):  # after the runs it may refer to
                    trail.store.write_batch(batch)
                    count += len(batch) + import_evaluation(trail, data)
                    batch = []
                    continue
                batch.append(registry.validate(data))
            except (ValueError, SchemaError) as exc:
                raise ConfigError(f"line {number}: not a ragtrail record: {exc}") from None
            if len(batch) >= _EXPORT_BATCH:
                trail.store.write_batch(batch)
                count += len(batch)
                batch = []
        if batch:
            trail.store.write_batch(batch)
            count += len(batch)
        url = trail.url
    if as_json:
        emit_json({"imported": count, "database": url})
    else:
        click.echo(f"imported {count} records", err=True)
