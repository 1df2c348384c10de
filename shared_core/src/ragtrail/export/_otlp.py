"""OTLP over HTTP (protobuf): stored traces on demand, and live from the writer."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from ..errors import ConfigError
from ..query import Lineage
from ._conventions import CONVENTIONS
from ._live import LiveExporter
from ._otel import SpanOptions, to_spans
from ._views import views_from_lineage, views_from_records

__all__ = ["OtlpExporter", "OtlpSummary", "parse_headers", "send_lineages", "span_exporter"]

#: Spans per OTLP request.
DEFAULT_BATCH_SPANS = 512


def _endpoint(endpoint: str) -> str:
    """The traces URL: ``http://host:4318`` gets ``/v1/traces`` appended."""
    if not isinstance(endpoint, str) or not endpoint.startswith(("http://", "https://")):
        raise ConfigError(f"OTLP endpoint must be an http(s) URL, got {endpoint!r}")
    rest = endpoint.split("://", 1)[1]
    if "/" not in rest.rstrip("/"):
        return endpoint.rstrip("/") + "/v1/traces"
    return endpoint


def span_exporter(endpoint: str, headers: Mapping[str, str] | None = None,
                  timeout_s: float = 10.0) -> SpanExporter:
    """The OpenTelemetry SDK's OTLP/HTTP protobuf span exporter for ``endpoint``."""
    return OTLPSpanExporter(endpoint=_endpoint(endpoint), headers=dict(headers or {}),
                            timeout=timeout_s)


def parse_headers(pairs: Iterable[str]) -> dict[str, str]:
    """``["K=V", ...]`` as a dict; a pair without ``=`` is a ConfigError."""
    headers = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--header takes KEY=VALUE, got {pair!r}")
        headers[key.strip()] = value.strip()
    return headers


@dataclass
class OtlpSummary:
    """What ``ragtrail export --otlp`` sent."""

    traces: int = 0
    spans: int = 0
    failed_batches: int = 0
    failed_spans: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every batch was accepted."""
        return self.failed_batches == 0


def send_spans(exporter: SpanExporter, spans: Sequence[ReadableSpan], summary: OtlpSummary,
               batch_spans: int = DEFAULT_BATCH_SPANS) -> None:
    """Send ``spans`` in batches, counting what the receiver refused."""
    for start in range(0, len(spans), batch_spans):
        batch = spans[start:start + batch_spans]
        if exporter.export(batch) is SpanExportResult.SUCCESS:
            summary.spans += len(batch)
        else:
            summary.failed_batches += 1
            summary.failed_spans += len(batch)


def send_lineages(lineages: Iterable[Lineage], exporter: SpanExporter,
                  options: SpanOptions | None = None,
                  batch_spans: int = DEFAULT_BATCH_SPANS) -> OtlpSummary:
    """Map and send stored traces (from :func:`ragtrail.query.lineage`)."""
    summary = OtlpSummary()
    pending: list[ReadableSpan] = []
    for lineage in lineages:
        summary.traces += 1
        pending += to_spans(views_from_lineage(lineage), options)
        if len(pending) >= batch_spans:
            send_spans(exporter, pending, summary, batch_spans)
            pending = []
    send_spans(exporter, pending, summary, batch_spans)
    return summary


class OtlpExporter(LiveExporter):
    """Live OTLP/HTTP export of every stored run: ``Trail(exporters=[OtlpExporter(url)])``.

    ``endpoint``: the receiver's traces URL (``http://host:4318/v1/traces``; a URL
    without a path gets ``/v1/traces``). ``headers``: sent with every request (API
    keys, ``x-mlflow-experiment-id``, ...). ``conventions``: any of ``"genai"`` and
    ``"openinference"``. ``include_content=False`` leaves out inputs, outputs, messages
    and document contents. The queue, batch and retry limits are
    :class:`~ragtrail.export.LiveExporter`'s.
    """

    kind = "otlp"

    def __init__(self, endpoint: str, headers: Mapping[str, str] | None = None,
                 conventions: Sequence[str] | str = CONVENTIONS, *,
                 include_content: bool = True, timeout_s: float = 10.0,
                 **limits: Any) -> None:
        super().__init__(**limits)
        self.endpoint = _endpoint(endpoint)
        self.options = SpanOptions.parse(conventions, include_content)
        self._headers = dict(headers or {})
        self._timeout_s = timeout_s
        self._exporter: SpanExporter | None = None

    def describe(self) -> str:
        """The endpoint (headers are not shown: they may hold keys)."""
        return self.endpoint

    def send(self, records: list[Any]) -> bool:
        """Map the stored records to spans and send them in one request."""
        if self._exporter is None:
            self._exporter = span_exporter(self.endpoint, self._headers, self._timeout_s)
        spans = to_spans(views_from_records(records), self.options)
        if not spans:
            return True
        ok = self._exporter.export(spans) is SpanExportResult.SUCCESS
        if not ok:
            self.note_error(f"the receiver at {self.endpoint} refused or did not answer")
        return ok

    def shutdown(self) -> None:
        """Close the HTTP session."""
        if self._exporter is not None:
            self._exporter.shutdown()
