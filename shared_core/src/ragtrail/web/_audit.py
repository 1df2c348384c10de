"""The audit of reads in the web view: an ASGI middleware that records, after a page or
an API answer showing a trace was served (status 200), who read it (the token's name),
when, and through which view, in ``read_audit`` (see :mod:`ragtrail.governance.audit`).
The write runs in a worker thread on its own small engine: the view's engine stays
read-only."""

from __future__ import annotations

import re
from urllib.parse import parse_qs

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..governance.audit import AuditLog

__all__ = ["ReadAuditMiddleware", "audited_reads"]

_TRACE_PATHS = [
    (re.compile(r"^/traces/([^/]+)$"), "trace"),
    (re.compile(r"^/traces/([^/]+)/lineage$"), "lineage"),
    (re.compile(r"^/traces/([^/]+)/runs/[^/]+$"), "run"),
    (re.compile(r"^/api/v1/traces/([^/]+)/detail$"), "api:detail"),
]
_DIFF_PATHS = {"/diff": "diff", "/api/v1/diff": "api:diff"}


def audited_reads(path: str, query: str) -> list[tuple[str, str]]:
    """``(view, trace id)`` of each trace a request to ``path?query`` shows."""
    for pattern, view in _TRACE_PATHS:
        match = pattern.match(path)
        if match:
            return [(view, match.group(1))]
    if path in _DIFF_PATHS:
        args = parse_qs(query)
        return [(_DIFF_PATHS[path], value) for key in ("a", "b") for value in args.get(key, [])]
    return []


class ReadAuditMiddleware:
    """Records each served read of a trace as ``reader`` in ``log``."""

    def __init__(self, app: ASGIApp, *, log: AuditLog, reader: str) -> None:
        self.app = app
        self.log = log
        self.reader = reader

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        reads = audited_reads(scope.get("path", ""),
                              scope.get("query_string", b"").decode("latin-1"))
        if not reads:
            await self.app(scope, receive, send)
            return
        status: list[int] = []

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
            await send(message)

        await self.app(scope, receive, watch)
        if status and status[0] == 200:
            for view, trace_id in reads:
                await anyio.to_thread.run_sync(self.log.record, self.reader, view, trace_id)
