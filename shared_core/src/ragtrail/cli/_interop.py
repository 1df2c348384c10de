"""``ragtrail export --otlp ENDPOINT`` and ``ragtrail export --openlineage URL|FILE``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ..errors import ConfigError, RagtrailError
from ._common import open_trail, parse_when

if TYPE_CHECKING:
    from ..query import Lineage

F = TypeVar("F", bound=Callable[..., Any])


def interop_options(func: F) -> F:
    """The export command's options for other systems."""
    for option in reversed((
        click.option("--otlp", "otlp", metavar="ENDPOINT",
                     help="Send the traces as OTLP/HTTP (protobuf) to ENDPOINT, e.g. "
                          "http://127.0.0.1:4318/v1/traces."),
        click.option("--header", "headers", multiple=True, metavar="K=V",
                     help="HTTP header for --otlp (repeat for several)."),
        click.option("--conventions", default="genai,openinference", show_default=True,
                     help="Attribute conventions for --otlp: genai, openinference or both."),
        click.option("--no-content", "no_content", is_flag=True,
                     help="Export no inputs, outputs, messages or document contents."),
        click.option("--timeout", "timeout_s", type=click.FloatRange(min=0.1), default=30.0,
                     show_default=True, help="Seconds to wait for the receiver per request."),
        click.option("--openlineage", "openlineage", metavar="URL|FILE",
                     help="Emit one OpenLineage RunEvent pair per trace to an HTTP endpoint "
                          "or append them to a file (JSON lines)."),
    )):
        func = option(func)
    return func


def _lineages(trail: Any, trace_ids: tuple[str, ...], since: str | None) -> Iterator[Lineage]:
    if trace_ids:
        for trace_id in trace_ids:
            yield trail.lineage(trace_id)
        return
    for summary in reversed(trail.traces(limit=10**9, since=parse_when(since, "--since"))):
        yield trail.lineage(summary.trace_id)  # oldest first, as they happened


def interop_export(db: str | None, trace_ids: tuple[str, ...], since: str | None, *,
                   otlp: str | None, headers: tuple[str, ...], conventions: str,
                   no_content: bool, openlineage: str | None, timeout_s: float) -> bool:
    """Run the --otlp / --openlineage export if one was asked for; False otherwise."""
    if otlp is None and openlineage is None:
        if headers:
            raise ConfigError("--header is for --otlp")
        return False
    if otlp is not None and openlineage is not None:
        raise ConfigError("give --otlp or --openlineage, not both")
    if trace_ids and since:
        raise ConfigError("give trace ids or --since, not both")
    try:
        if otlp is not None:
            from ..export._otel import SpanOptions
            from ..export._otlp import parse_headers, send_lineages, span_exporter
        else:
            from ..export._openlineage import emit_lineages, openlineage_client
    except ImportError as exc:
        extra = "otel" if otlp is not None else "openlineage"
        raise ConfigError(f"this export needs the {extra!r} extra: pip install "
                          f"'ragtrail[{extra}]' ({exc})") from None
    with open_trail(db) as trail:
        if otlp is not None:
            options = SpanOptions.parse(conventions, include_content=not no_content)
            exporter = span_exporter(otlp, parse_headers(headers), timeout_s)
            try:
                summary = send_lineages(_lineages(trail, trace_ids, since), exporter, options)
            finally:
                exporter.shutdown()
            click.echo(f"sent {summary.spans} spans from {summary.traces} traces to "
                       f"{otlp}; {summary.failed_batches} batches ({summary.failed_spans} "
                       f"spans) refused")
            if not summary.ok:
                raise RagtrailError(f"{summary.failed_batches} OTLP batches were refused")
        else:
            assert openlineage is not None
            client = openlineage_client(openlineage, timeout_s)
            result = emit_lineages(_lineages(trail, trace_ids, since), client,
                                   app_name=None, include_content=not no_content)
            click.echo(f"emitted {result.events} OpenLineage events for {result.traces} "
                       f"traces to {openlineage}; {result.failed} failed")
            if result.failed:
                raise RagtrailError(f"{result.failed} OpenLineage events were not accepted")
    return True
