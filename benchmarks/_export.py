"""Export throughput: spans per second from stored records to an OTLP/HTTP receiver.

Three measurements on the same realistic traces (``_data.records``):

* ``map``: records -> OpenTelemetry spans (GenAI + OpenInference + ragtrail attributes),
  in memory: the mapping's own cost.
* ``send``: mapping, protobuf encoding and HTTP POST (the OpenTelemetry SDK's OTLP
  exporter, 512 spans per request) to a receiver on 127.0.0.1 that reads each request
  and answers 200 without decoding it: what the live exporter's thread can sustain.
* ``from_store``: ``ragtrail export --otlp``'s path: ``trail.lineage()`` per trace from
  SQLite, then mapping and sending.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ._common import Sizes, say
from ._data import records


class _Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


def run(sizes: Sizes, work: Path) -> dict[str, Any]:
    from ragtrail import Trail
    from ragtrail.export._otel import SpanOptions, to_spans
    from ragtrail.export._otlp import OtlpSummary, send_lineages, send_spans, span_exporter
    from ragtrail.export._views import views_from_records

    batch = records(sizes.export_traces)
    options = SpanOptions()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1/traces"
    exporter = span_exporter(url)
    out: dict[str, Any] = {"traces": sizes.export_traces, "spans": len(batch)}
    try:
        start = time.perf_counter()
        spans = to_spans(views_from_records(batch), options)
        out["map_spans_per_s"] = len(spans) / (time.perf_counter() - start)

        summary = OtlpSummary()
        start = time.perf_counter()
        send_spans(exporter, to_spans(views_from_records(batch), options), summary)
        out["send_spans_per_s"] = summary.spans / (time.perf_counter() - start)
        out["send_failed_batches"] = summary.failed_batches

        url_db = f"sqlite:///{work / 'export.db'}"
        with Trail(url_db, background=False) as trail:
            trail.store.write_batch(batch)
            ids = [t.trace_id for t in trail.traces(limit=10**9)]
            start = time.perf_counter()
            stored = send_lineages((trail.lineage(i) for i in ids), exporter, options)
            out["from_store_spans_per_s"] = stored.spans / (time.perf_counter() - start)
            out["from_store_spans"] = stored.spans
    finally:
        exporter.shutdown()
        server.shutdown()
        server.server_close()
    say(f"export: map {out['map_spans_per_s']:,.0f} spans/s, send {out['send_spans_per_s']:,.0f}"
        f" spans/s, from the store {out['from_store_spans_per_s']:,.0f} spans/s")
    return out
