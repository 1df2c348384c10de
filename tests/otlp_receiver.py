"""A tiny OTLP/HTTP receiver on 127.0.0.1 for the export tests: it decodes every request
with opentelemetry-proto and keeps the spans; it can refuse, answer slowly or go away."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


@dataclass
class ReceivedSpan:
    """One span as received, with its attributes decoded to Python values."""

    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: int
    start_ns: int
    end_ns: int
    status_code: int
    status_message: str
    attributes: dict[str, Any]
    events: list[dict[str, Any]]
    resource: dict[str, Any]
    scope: str


def _value(value: Any) -> Any:
    which = value.WhichOneof("value")
    if which == "array_value":
        return [_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, which) if which else None


def _attrs(items: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in items}


@dataclass
class Receiver:
    """State shared with the handler: mode is "ok", "refuse" (HTTP 400), "unavailable"
    (HTTP 503) or "slow" (answers after ``delay_s``)."""

    mode: str = "ok"
    delay_s: float = 0.0
    requests: int = 0
    headers: list[dict[str, str]] = field(default_factory=list)
    spans: list[ReceivedSpan] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def by_name(self, name: str) -> list[ReceivedSpan]:
        with self.lock:
            return [s for s in self.spans if s.name == name]

    def wait_for(self, count: int, timeout_s: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.spans) >= count:
                    return True
            time.sleep(0.02)
        return False


def _handler(state: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with state.lock:
                state.requests += 1
                state.headers.append({k.lower(): v for k, v in self.headers.items()})
                mode, delay = state.mode, state.delay_s
            if mode == "slow":
                time.sleep(delay)
            if mode in ("refuse", "unavailable"):
                self.send_response(400 if mode == "refuse" else 503)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            received = []
            for rs in request.resource_spans:
                resource = _attrs(rs.resource.attributes)
                for ss in rs.scope_spans:
                    for span in ss.spans:
                        received.append(ReceivedSpan(
                            trace_id=span.trace_id.hex(), span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex(), name=span.name,
                            kind=span.kind, start_ns=span.start_time_unix_nano,
                            end_ns=span.end_time_unix_nano, status_code=span.status.code,
                            status_message=span.status.message,
                            attributes=_attrs(span.attributes),
                            events=[{"name": e.name, "time": e.time_unix_nano,
                                     "attributes": _attrs(e.attributes)} for e in span.events],
                            resource=resource, scope=ss.scope.name))
            with state.lock:
                state.spans.extend(received)
            payload = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return Handler


def serve() -> Iterator[Receiver]:
    """Run a receiver until the generator is closed (use as a pytest fixture body)."""
    state = Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}/v1/traces"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def as_dict(message: Any) -> dict[str, Any]:
    return MessageToDict(message)
