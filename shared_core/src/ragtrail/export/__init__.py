"""Exporting stored traces to other systems: OpenTelemetry (OTLP) and OpenLineage.

    from ragtrail import Trail
    from ragtrail.export import OtlpExporter
    trail = Trail(exporters=[OtlpExporter("http://127.0.0.1:4318/v1/traces")])

Needs the ``otel`` extra (``pip install 'ragtrail[otel]'``) for OTLP and the
``openlineage`` extra for OpenLineage. See the README's "Exporting" section for the
attribute mapping.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._live import ExportingStore, LiveExporter

if TYPE_CHECKING:
    from ._otel import SpanOptions, span_ids, to_spans
    from ._otlp import OtlpExporter, OtlpSummary
    from ._views import RunView, views_from_lineage, views_from_records

__all__ = ["ExportingStore", "LiveExporter", "OtlpExporter", "OtlpSummary", "RunView",
           "SpanOptions", "span_ids", "to_spans", "views_from_lineage", "views_from_records"]

_LAZY = {"OtlpExporter": "_otlp", "OtlpSummary": "_otlp", "SpanOptions": "_otel",
         "span_ids": "_otel", "to_spans": "_otel", "RunView": "_views",
         "views_from_lineage": "_views", "views_from_records": "_views"}


def __getattr__(name: str) -> Any:
    # Lazy: the OpenTelemetry SDK is imported only by who exports with it.
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ragtrail.export' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f"{__name__}.{module}"), name)
