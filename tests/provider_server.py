"""A fake provider: OpenAI chat completions and Anthropic messages over HTTP on 127.0.0.1.

The real client libraries (``langchain-openai``, ``langchain-anthropic``, LlamaIndex's
``OpenAI``, ``OpenAILike`` and ``Anthropic``) are pointed at it, so the tests see what
those clients really report. It answers the way the real services do:

- ``POST /v1/chat/completions``: usage with ``prompt_tokens_details.cached_tokens`` and
  ``.cache_write_tokens`` and ``completion_tokens_details.reasoning_tokens``, ``id``,
  ``model`` (a dated version of the model asked for), ``system_fingerprint``,
  ``service_tier`` (the one asked for, else ``default``), ``finish_reason``; streamed as
  server-sent events ending with the usage chunk when ``stream_options.include_usage``;
  headers ``x-request-id`` and ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}``;
- ``POST /v1/messages``: usage as the API reports it today: ``cache_read_input_tokens``
  and ``cache_creation_input_tokens`` (not included in ``input_tokens``, as Anthropic
  counts), the cache writes split by time to live in ``cache_creation``
  (``ephemeral_5m_input_tokens``, ``ephemeral_1h_input_tokens``),
  ``output_tokens_details.thinking_tokens``, ``service_tier``; ``stop_reason``; streamed
  as ``message_start`` (the message with that whole usage) .. ``message_delta``
  (cumulative usage in the API's ``MessageDeltaUsage`` shape, which has no TTL split)
  .. ``message_stop``; headers ``request-id`` and ``anthropic-ratelimit-*``.

Replies are scripted with :meth:`ProviderServer.reply_next` (a queue of texts answered
in order, then :data:`ANSWER` again), e.g. an LLM judge's verdicts.

Every request is recorded (:attr:`ProviderServer.requests`) with the ids the server
issued for it, so a test compares what was stored with what was really sent and
answered. Failures are queued with :meth:`ProviderServer.fail_next` (an HTTP error with
an optional ``retry-after``) or :meth:`ProviderServer.malformed_next` (a 200 whose body
is not JSON). ``first_chunk_delay_s`` holds back the first streamed event (after the
headers) so time to first token can be checked.

:func:`loopback_only` makes any connection attempt beyond 127.0.0.1 fail at once
(tiktoken, for one, downloads its files on first use): these machines have no internet
and a test must fail fast rather than hang.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import genai_prices
import pytest

from ragtrail import Trail
from ragtrail.pricing import Pricer
from ragtrail.query import Lineage
from ragtrail.schemas import LLMMetadata, LLMTokenUsage, PriceStatus, RunKind, RunStatus

OPENAI_MODEL = "gpt-4o-mini"
ANTHROPIC_MODEL = "claude-3-5-haiku-latest"
#: What the server says answered: the dated version of the model asked for.
MODEL_VERSIONS = {OPENAI_MODEL: "gpt-4o-mini-2024-07-18",
                  ANTHROPIC_MODEL: "claude-3-5-haiku-20241022"}
SYSTEM_FINGERPRINT = "fp_44709d6fcb"
ANSWER = "WAL lets readers proceed while one writer appends to the log."

# OpenAI: cached and cache-written tokens are a part of prompt_tokens, reasoning a part of
# completion_tokens.
OPENAI_USAGE = {"prompt_tokens": 1200, "completion_tokens": 40, "total_tokens": 1240,
                "prompt_tokens_details": {"cached_tokens": 1024, "cache_write_tokens": 128,
                                          "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 8, "audio_tokens": 0,
                                              "accepted_prediction_tokens": 0,
                                              "rejected_prediction_tokens": 0}}
# Anthropic: input_tokens is only the uncached part; thinking is a part of output_tokens;
# the 200 cache writes are 150 kept for 5 minutes and 50 kept for an hour.
ANTHROPIC_CACHE_TTL = {"ephemeral_5m_input_tokens": 150, "ephemeral_1h_input_tokens": 50}
ANTHROPIC_USAGE = {"input_tokens": 100, "cache_read_input_tokens": 1000,
                   "cache_creation_input_tokens": 200, "cache_creation": ANTHROPIC_CACHE_TTL,
                   "output_tokens": 50, "output_tokens_details": {"thinking_tokens": 12},
                   "server_tool_use": None, "service_tier": "standard"}
#: What a stream's message_delta repeats of it (cumulative): the API's MessageDeltaUsage
#: carries the counts but not the TTL split, which only message_start has.
ANTHROPIC_DELTA_USAGE = {k: ANTHROPIC_USAGE[k] for k in (
    "input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens", "output_tokens",
    "output_tokens_details", "server_tool_use")}

OPENAI_RATE_HEADERS = {
    "x-ratelimit-limit-requests": "10000",
    "x-ratelimit-remaining-requests": "9998",
    "x-ratelimit-reset-requests": "6m0s",
    "x-ratelimit-limit-tokens": "200000",
    "x-ratelimit-remaining-tokens": "198760",
    "x-ratelimit-reset-tokens": "372ms",
}
ANTHROPIC_RESET = "2030-01-01T00:00:30Z"
ANTHROPIC_RATE_HEADERS = {
    "anthropic-ratelimit-requests-limit": "50",
    "anthropic-ratelimit-requests-remaining": "49",
    "anthropic-ratelimit-requests-reset": ANTHROPIC_RESET,
    "anthropic-ratelimit-tokens-limit": "40000",
    "anthropic-ratelimit-tokens-remaining": "38650",
    "anthropic-ratelimit-tokens-reset": ANTHROPIC_RESET,
}
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
_CHUNK_GAP_S = 0.005  # between streamed events, so a stream takes measurable time


@dataclass(frozen=True)
class Failure:
    """How the server answers one request instead of succeeding."""

    status: int = 200
    retry_after_s: float | None = None
    malformed: bool = False


@dataclass
class Received:
    """One request as the server received it, and the ids it answered with."""

    api: str  # "openai" or "anthropic"
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    request_id: str
    response_id: str
    status: int = 200
    first_chunk_at: float | None = None  # time.monotonic() when the first event was sent
    #: The tool call answered instead of text ({id, name, arguments}), when scripted.
    tool_call: dict[str, Any] | None = None
    reply: str = ANSWER  # the text answered (see ProviderServer.reply_next)

    @property
    def streamed(self) -> bool:
        """True when the client asked for server-sent events."""
        return bool(self.body.get("stream"))


@dataclass
class ProviderServer:
    """The fake provider (see the module docstring). Use as a context manager."""

    first_chunk_delay_s: float = 0.0
    requests: list[Received] = field(default_factory=list)
    _failures: deque[Failure] = field(default_factory=deque)
    _tool_calls: deque[dict[str, Any]] = field(default_factory=deque)
    _replies: deque[str] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _httpd: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def __enter__(self) -> ProviderServer:
        server = self

        class Handler(_Handler):
            provider = server

        self._httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(5.0)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``: the Anthropic clients' base URL."""
        if self._httpd is None:
            raise RuntimeError("the server is not running")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def openai_url(self) -> str:
        """The OpenAI clients' base URL (``.../v1``)."""
        return f"{self.url}/v1"

    # -- scripting and inspection ------------------------------------------------------

    def fail_next(self, status: int, *, retry_after_s: float | None = None,
                  times: int = 1) -> None:
        """Answer the next ``times`` requests with HTTP ``status`` (and ``retry-after``)."""
        with self._lock:
            self._failures.extend([Failure(status, retry_after_s)] * times)

    def malformed_next(self, times: int = 1) -> None:
        """Answer the next ``times`` requests with a 200 whose JSON body is cut short."""
        with self._lock:
            self._failures.extend([Failure(malformed=True)] * times)

    def tool_call_next(self, name: str, arguments: dict[str, Any]) -> str:
        """Answer the next (non-streamed) request with a call of tool ``name`` instead of
        text: OpenAI ``tool_calls`` (finish ``tool_calls``), Anthropic a ``tool_use``
        block (stop ``tool_use``). Returns the call's id."""
        call_id = f"call_{uuid.uuid4().hex[:12]}"
        with self._lock:
            self._tool_calls.append({"id": call_id, "name": name, "arguments": arguments})
        return call_id

    def reply_next(self, *texts: str) -> None:
        """Answer the next requests with these texts, in order (then :data:`ANSWER`)."""
        with self._lock:
            self._replies.extend(texts)

    def last(self, api: str | None = None) -> Received:
        """The most recent request (to ``api`` when given)."""
        with self._lock:
            found = [r for r in self.requests if api is None or r.api == api]
        if not found:
            raise AssertionError(f"the server received no {api or ''} request")
        return found[-1]

    def _record(self, received: Received) -> Failure | None:
        with self._lock:
            self.requests.append(received)
            if self._tool_calls and not received.streamed:
                received.tool_call = self._tool_calls.popleft()
            failure = self._failures.popleft() if self._failures else None
            if failure is None and self._replies:
                received.reply = self._replies.popleft()
            return failure


def rate_headers(api: str) -> dict[str, str]:
    """The rate-limit headers the server sends on every answer to ``api``."""
    return dict(OPENAI_RATE_HEADERS if api == "openai" else ANTHROPIC_RATE_HEADERS)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client closing its kept-alive connection is normal; other errors are shown."""
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    provider: ProviderServer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: pytest shows failures, not access logs."""

    def do_POST(self) -> None:
        """Route to the OpenAI or Anthropic dialect."""
        api = {"/v1/chat/completions": "openai", "/v1/messages": "anthropic"}.get(
            self.path.split("?", 1)[0])
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        if api is None:
            self._send_json(404, {"error": {"message": f"no route {self.path}"}}, {})
            return
        body = json.loads(raw or b"{}")
        prefix = "chatcmpl-" if api == "openai" else "msg_"
        received = Received(api, self.path, {k.lower(): v for k, v in self.headers.items()},
                            body, request_id=f"req_{uuid.uuid4().hex}",
                            response_id=f"{prefix}{uuid.uuid4().hex[:24]}")
        failure = self.provider._record(received)
        headers = {"x-request-id" if api == "openai" else "request-id": received.request_id,
                   **rate_headers(api)}
        if failure is not None and failure.malformed:
            self._send_bytes(200, b'{"id": "' + received.response_id.encode() + b'", "cho',
                             "application/json", headers)
        elif failure is not None:
            received.status = failure.status
            if failure.retry_after_s is not None:
                headers["retry-after"] = f"{failure.retry_after_s:g}"
            self._send_json(failure.status, _error_body(api, failure.status), headers)
        elif received.streamed:
            self._stream(received, headers)
        else:
            build = _openai_completion if api == "openai" else _anthropic_message
            self._send_json(200, build(received), headers)

    # -- writing -----------------------------------------------------------------------

    def _send_json(self, status: int, payload: Any, headers: dict[str, str]) -> None:
        self._send_bytes(status, json.dumps(payload).encode(), "application/json", headers)

    def _send_bytes(self, status: int, data: bytes, content_type: str,
                    headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, received: Received, headers: dict[str, str]) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("transfer-encoding", "chunked")
        self.send_header("cache-control", "no-cache")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.flush()
        # Headers first, then the wait: like a real model thinking before its first token.
        time.sleep(self.provider.first_chunk_delay_s)
        events = _openai_events(received) if received.api == "openai" \
            else _anthropic_events(received)
        for index, event in enumerate(events):
            if index == 0:
                received.first_chunk_at = time.monotonic()
            else:
                time.sleep(_CHUNK_GAP_S)
            self._chunk(event.encode())
        self._chunk(b"")

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


# -- the two dialects ------------------------------------------------------------------


def _words(text: str = ANSWER) -> list[str]:
    words = text.split(" ")
    return [w if i == 0 else f" {w}" for i, w in enumerate(words)]


def _model(body: dict[str, Any]) -> str:
    asked = str(body.get("model") or "")
    return MODEL_VERSIONS.get(asked, asked)


def _tier(body: dict[str, Any]) -> str:
    """The service tier an OpenAI answer names: the one asked for, else ``default``."""
    asked = body.get("service_tier")
    return "default" if asked in (None, "auto") else str(asked)


def _error_body(api: str, status: int) -> dict[str, Any]:
    kind = {429: "rate_limit_error", 500: "api_error", 529: "overloaded_error"}.get(
        status, "invalid_request_error")
    message = f"simulated {status} ({kind})"
    if api == "openai":
        code = "rate_limit_exceeded" if status == 429 else None
        return {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return {"type": "error", "error": {"type": kind, "message": message}}


def _openai_completion(received: Received) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": received.reply,
                               "refusal": None}
    finish = "stop"
    if received.tool_call is not None:
        call = received.tool_call
        message = {"role": "assistant", "content": None, "refusal": None, "tool_calls": [
            {"id": call["id"], "type": "function",
             "function": {"name": call["name"], "arguments": json.dumps(call["arguments"])}}]}
        finish = "tool_calls"
    return {
        "id": received.response_id, "object": "chat.completion", "created": int(time.time()),
        "model": _model(received.body), "system_fingerprint": SYSTEM_FINGERPRINT,
        "service_tier": _tier(received.body),
        "choices": [{"index": 0, "finish_reason": finish, "logprobs": None,
                     "message": message}],
        "usage": OPENAI_USAGE,
    }


def _openai_events(received: Received) -> Iterator[str]:
    base = {"id": received.response_id, "object": "chat.completion.chunk",
            "created": int(time.time()), "model": _model(received.body),
            "system_fingerprint": SYSTEM_FINGERPRINT, "service_tier": _tier(received.body)}
    include_usage = bool((received.body.get("stream_options") or {}).get("include_usage"))
    extra = {"usage": None} if include_usage else {}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return f"data: {json.dumps({**base, 'choices': [choice], **extra})}\n\n"

    yield chunk({"role": "assistant", "content": "", "refusal": None})
    for word in _words(received.reply):
        yield chunk({"content": word})
    yield chunk({}, "stop")
    if include_usage:
        yield f"data: {json.dumps({**base, 'choices': [], 'usage': OPENAI_USAGE})}\n\n"
    yield "data: [DONE]\n\n"


def _anthropic_message(received: Received) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "text", "text": received.reply}]
    stop = "end_turn"
    if received.tool_call is not None:
        call = received.tool_call
        content = [{"type": "tool_use", "id": call["id"], "name": call["name"],
                    "input": call["arguments"]}]
        stop = "tool_use"
    return {
        "id": received.response_id, "type": "message", "role": "assistant",
        "model": _model(received.body), "content": content,
        "stop_reason": stop, "stop_sequence": None, "usage": ANTHROPIC_USAGE,
    }


def _sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps({'type': event, **data})}\n\n"


def _anthropic_events(received: Received) -> Iterator[str]:
    start_usage = {k: v for k, v in ANTHROPIC_USAGE.items() if k != "output_tokens_details"}
    message = {**_anthropic_message(received), "content": [], "stop_reason": None,
               "usage": {**start_usage, "output_tokens": 1}}
    yield _sse("message_start", {"message": message})
    yield _sse("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
    yield _sse("ping", {})
    for word in _words(received.reply):
        yield _sse("content_block_delta",
                   {"index": 0, "delta": {"type": "text_delta", "text": word}})
    yield _sse("content_block_stop", {"index": 0})
    # The API now repeats the (cumulative) counts in message_delta, without the TTL split.
    yield _sse("message_delta", {"delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                 "usage": ANTHROPIC_DELTA_USAGE})
    yield _sse("message_stop", {})


# -- fixtures --------------------------------------------------------------------------


def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuse, at once, any name lookup or connection beyond the loopback interface."""
    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.socket.connect

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name not in _LOOPBACK:
            raise socket.gaierror(f"provider tests are offline: no lookup of {name!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    def connect(self: socket.socket, address: Any) -> None:
        if isinstance(address, tuple) and str(address[0]) not in _LOOPBACK:
            raise ConnectionRefusedError(f"provider tests are offline: no connection to "
                                         f"{address[0]!r}")
        real_connect(self, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    for name in ("OPENAI_BASE_URL", "OPENAI_API_BASE", "ANTHROPIC_BASE_URL", "HTTPS_PROXY",
                 "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


def serve_provider(monkeypatch: pytest.MonkeyPatch) -> Iterator[ProviderServer]:
    """A running fake provider, with every non-loopback connection refused.

    Test modules make it their ``provider`` fixture:
    ``provider = pytest.fixture(name="provider")(serve_provider)``.
    """
    loopback_only(monkeypatch)
    with ProviderServer() as server:
        yield server


def module_trail(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trail]:
    """A Trail on a new SQLite file, for one test module (each test reads only its own
    trace): ``trail = pytest.fixture(name="trail", scope="module")(module_trail)``."""
    path = tmp_path_factory.mktemp("providers") / "ragtrail.db"
    with Trail(f"sqlite:///{path}") as opened:
        yield opened


def utc_now() -> datetime:
    """Now, in UTC (for bounds around a call's reset timestamps)."""
    return datetime.now(timezone.utc)


def reset_bounds(before: datetime, after: datetime, seconds: float) -> tuple[datetime, datetime]:
    """Where a reset ``seconds`` after a response received between the two times lies."""
    delta = timedelta(seconds=seconds)
    return before + delta, after + delta


# -- reading what was sent ---------------------------------------------------------------

#: ragtrail request parameter -> the request body keys that carry it (first one present).
_BODY_KEYS = {
    "model": ("model",),
    "temperature": ("temperature",),
    "top_p": ("top_p",),
    "top_k": ("top_k",),
    "max_tokens": ("max_tokens", "max_completion_tokens"),
    "frequency_penalty": ("frequency_penalty",),
    "presence_penalty": ("presence_penalty",),
    "stop_sequences": ("stop", "stop_sequences"),
    "seed": ("seed",),
}


def sent_parameters(body: dict[str, Any]) -> dict[str, Any]:
    """Every ragtrail request parameter, as the request body carried it (None: not sent)."""
    sent: dict[str, Any] = {}
    for name, keys in _BODY_KEYS.items():
        value = next((body[k] for k in keys if body.get(k) is not None), None)
        sent[name] = [value] if name == "stop_sequences" and isinstance(value, str) else value
    return sent


# -- what ragtrail should store ----------------------------------------------------------

#: ragtrail's usage for the server's answers: input_tokens includes the cached tokens
#: (OpenAI already counts them in; Anthropic's 100 uncached + 1000 read + 200 written).
EXPECTED_USAGE = {
    "openai": LLMTokenUsage(input_tokens=1200, output_tokens=40, total_tokens=1240,
                            cache_read_tokens=1024, cache_creation_tokens=128,
                            reasoning_tokens=8),
    "anthropic": LLMTokenUsage(input_tokens=1300, output_tokens=50, total_tokens=1350,
                               cache_read_tokens=1000, cache_creation_tokens=200,
                               reasoning_tokens=12),
}


#: What ragtrail keeps in the provider specifics of an Anthropic call whose client passes
#: the TTL split on.
EXPECTED_CACHE_CREATION = dict(ANTHROPIC_CACHE_TTL)


def assert_priced(meta: LLMMetadata, api: str, provider: str | None, *,
                  ttl_split: bool = False) -> None:
    """The stored cost is ragtrail's price of the expected usage, bucket by bucket.

    ``ttl_split``: the client passed Anthropic's cache writes by TTL on, so the one-hour
    writes are priced at their own rate, and the total is genai-prices' own price of
    what the server sent. Without it (streams) every write is priced at the 5-minute
    rate: the split never reached ragtrail.
    """
    model = OPENAI_MODEL if api == "openai" else ANTHROPIC_MODEL
    one_hour = ANTHROPIC_CACHE_TTL["ephemeral_1h_input_tokens"] if ttl_split else None
    expected = Pricer().cost(EXPECTED_USAGE[api], model=model, provider=provider,
                             at=meta.request_timestamp, cache_write_1h_tokens=one_hour)
    assert expected.price_status is PriceStatus.PRICED
    assert meta.cost_metrics == expected
    specific = meta.provider_specific or {}
    assert specific.get("cache_creation") == (EXPECTED_CACHE_CREATION if ttl_split else None)
    if ttl_split or api == "openai":
        assert expected.total_cost == genai_prices_total(api, meta.request_timestamp)


def genai_prices_total(api: str, at: datetime | None) -> Decimal:
    """genai-prices' own price of the usage the server sends, read by its own extractor
    from the raw answer (for Anthropic: the 1h cache writes at their own rate)."""
    answer = {"model": OPENAI_MODEL if api == "openai" else ANTHROPIC_MODEL,
              "usage": OPENAI_USAGE if api == "openai" else ANTHROPIC_USAGE}
    extracted = genai_prices.extract_usage(answer, provider_id=api,
                                           api_flavor="chat" if api == "openai" else "default")
    price = extracted.calc_price(genai_request_timestamp=at)
    return price.total_price


def only_llm(lineage: Lineage) -> LLMMetadata:
    """The metadata of the trace's one run, an LLM call."""
    assert [run.kind for run in lineage.runs] == [RunKind.LLM]
    assert len(lineage.llm_calls) == 1
    return lineage.llm_calls[0].metadata


def assert_http_error(lineage: Lineage, status: int, retry_after_s: float | None,
                      model: str) -> LLMMetadata:
    """The LLM run ended in error with the HTTP status and retry-after, and no usage."""
    meta = only_llm(lineage)
    run = lineage.runs[0]
    assert run.status is RunStatus.ERROR and run.error is not None
    assert (run.error.http_status, run.error.retry_after_s) == (status, retry_after_s)
    assert f"simulated {status}" in run.error.message
    assert meta.provider_model == model
    assert meta.token_usage is None
    return meta
