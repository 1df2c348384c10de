"""Export throughput: OTLP spans and OpenLineage events per second, each beside a ceiling
measured in the same run against the same receiver.

The traces are the realistic ones of ``_data.records`` (10 runs each: retriever with 5
documents, reranker, prompt, LLM call with usage and cost, ...). The receiver is an
HTTP/1.1 server on 127.0.0.1, in this process, that reads each request and answers 200
without decoding it (its own cost is in every figure, the ceilings' included).

OTLP (OpenTelemetry over HTTP, protobuf, 512 spans per request):

* ``map``: stored records -> OpenTelemetry spans (GenAI + OpenInference + ragtrail
  attributes), in memory: the mapping's own cost.
* ``send``: mapping, then the OpenTelemetry SDK's OTLP exporter (protobuf encoding and
  POST): what the live exporter's thread sustains.
* ceiling ``sdk_export``: the SDK's exporter sending the same spans, already built:
  encoding and POST, none of ragtrail's work.
* ceiling ``intake``: the same requests, already encoded, POSTed with a bare
  ``requests`` session (the library the SDK's exporter uses): the receiver's intake.
* ``from_store``: ``ragtrail export --otlp``'s path: ``trail.lineage()`` per trace from
  SQLite, then mapping and sending (the load is also reported on its own).

OpenLineage (a START and a COMPLETE/FAIL ``RunEvent`` per trace, JSON, one POST each):

* ``map``: ``events_for(lineage)`` and the client's JSON serialisation, in memory.
* ``send``: ``emit_lineages`` through openlineage-python's HTTP transport.
* ceiling ``intake``: the same JSON bodies POSTed with a bare ``requests`` session (the
  library the transport uses).

OpenLineage figures are events per second; ``*_runs_per_s`` converts them to the runs
(spans) the events cover, to compare with the OTLP figures.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ._common import Sizes, say
from ._data import records

#: Spans per OTLP request (ragtrail's default batch).
BATCH_SPANS = 512


class _Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


def _post_all(url: str, bodies: Sequence[bytes], content_type: str) -> float:
    """Seconds to POST every body with one keep-alive ``requests`` session."""
    import requests

    with requests.Session() as session:
        start = time.perf_counter()
        for body in bodies:
            response = session.post(url, data=body, headers={"Content-Type": content_type},
                                    timeout=30)
            if response.status_code != 200:
                raise RuntimeError(f"the sink answered {response.status_code}")
        return time.perf_counter() - start


def run(sizes: Sizes, work: Path) -> dict[str, Any]:
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    from ragtrail import Trail
    from ragtrail.export._otel import SpanOptions, to_spans
    from ragtrail.export._otlp import OtlpSummary, send_lineages, send_spans, span_exporter
    from ragtrail.export._views import views_from_records

    batch = records(sizes.export_traces)
    options = SpanOptions()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    url = f"{base}/v1/traces"
    exporter = span_exporter(url)
    out: dict[str, Any] = {"traces": sizes.export_traces, "spans": len(batch),
                           "batch_spans": BATCH_SPANS}
    try:
        # -- OTLP ---------------------------------------------------------------------
        start = time.perf_counter()
        spans = to_spans(views_from_records(batch), options)
        out["map_spans_per_s"] = len(spans) / (time.perf_counter() - start)

        summary = OtlpSummary()
        start = time.perf_counter()
        send_spans(exporter, to_spans(views_from_records(batch), options), summary,
                   BATCH_SPANS)
        out["send_spans_per_s"] = summary.spans / (time.perf_counter() - start)
        out["send_failed_batches"] = summary.failed_batches

        ceiling = OtlpSummary()
        start = time.perf_counter()
        send_spans(exporter, spans, ceiling, BATCH_SPANS)
        out["sdk_export_spans_per_s"] = ceiling.spans / (time.perf_counter() - start)
        out["sdk_export_failed_batches"] = ceiling.failed_batches

        bodies = [encode_spans(spans[i:i + BATCH_SPANS]).SerializeToString()
                  for i in range(0, len(spans), BATCH_SPANS)]
        out["otlp_bytes_per_span"] = sum(map(len, bodies)) / len(spans)
        seconds = _post_all(url, bodies, "application/x-protobuf")
        out["intake_spans_per_s"] = len(spans) / seconds
        del spans, bodies

        # -- from the store -------------------------------------------------------------
        url_db = f"sqlite:///{work / 'export.db'}"
        with Trail(url_db, background=False) as trail:
            trail.store.write_batch(batch)
            ids = [t.trace_id for t in trail.traces(limit=10**9)]
            start = time.perf_counter()
            lineages = [trail.lineage(i) for i in ids]
            load_s = time.perf_counter() - start
        out["lineage_load_traces_per_s"] = len(lineages) / load_s
        start = time.perf_counter()
        stored = send_lineages(lineages, exporter, options, BATCH_SPANS)
        send_s = time.perf_counter() - start
        out["from_store_spans_per_s"] = stored.spans / (load_s + send_s)
        out["from_store_spans"] = stored.spans
        out["from_store_failed_batches"] = stored.failed_batches

        out.update(_openlineage(lineages, base))
    finally:
        exporter.shutdown()
        server.shutdown()
        server.server_close()
    say(f"export (OTLP, {out['spans']:,} spans): map {out['map_spans_per_s']:,.0f} spans/s, "
        f"map + send {out['send_spans_per_s']:,.0f}, SDK exporter alone (ceiling) "
        f"{out['sdk_export_spans_per_s']:,.0f}, bare intake (ceiling) "
        f"{out['intake_spans_per_s']:,.0f}, from the store {out['from_store_spans_per_s']:,.0f}")
    say(f"export (OpenLineage, {out['openlineage_events']:,} events): map "
        f"{out['openlineage_map_events_per_s']:,.0f} events/s, map + send "
        f"{out['openlineage_send_events_per_s']:,.0f}, bare intake (ceiling) "
        f"{out['openlineage_intake_events_per_s']:,.0f}")
    return out


def _openlineage(lineages: Sequence[Any], base: str) -> dict[str, Any]:
    """OpenLineage events per second from lineages in memory (see the module docstring);
    empty (with the reason) when openlineage-python is not installed."""
    try:
        from openlineage.client.serde import Serde

        from ragtrail.export._openlineage import emit_lineages, events_for, openlineage_client
    except ImportError as exc:
        return {"openlineage_skipped": f"openlineage-python is not installed: {exc}"}
    runs = sum(len(lineage.runs) for lineage in lineages)
    out: dict[str, Any] = {}
    start = time.perf_counter()
    bodies = [Serde.to_json(event).encode() for lineage in lineages
              for event in events_for(lineage)]
    map_s = time.perf_counter() - start
    events = len(bodies)
    out["openlineage_events"] = events
    out["openlineage_bytes_per_event"] = sum(map(len, bodies)) / events
    out["openlineage_map_events_per_s"] = events / map_s

    client = openlineage_client(f"{base}/api/v1/lineage", timeout_s=30.0)
    start = time.perf_counter()
    summary = emit_lineages(lineages, client)
    send_s = time.perf_counter() - start
    out["openlineage_send_events_per_s"] = summary.events / send_s
    out["openlineage_send_runs_per_s"] = runs / send_s
    out["openlineage_failed_events"] = summary.failed

    seconds = _post_all(f"{base}/api/v1/lineage", bodies, "application/json")
    out["openlineage_intake_events_per_s"] = events / seconds
    out["openlineage_intake_runs_per_s"] = runs / seconds
    return out
