"""The Starlette application: JSON API (``/api/v1``) and server-rendered pages."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import jinja2
from markupsafe import Markup, escape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..errors import ConfigError, NotFoundError, RagtrailError
from ..redaction import BUILTIN_RULES
from ..schemas import RunKind, RunStatus
from ._data import (
    EVALUATION_FILTERS,
    TRACE_FILTERS,
    Source,
    evaluation_json,
    jsonable,
    stage_table,
)
from ._security import COOKIE, SecurityMiddleware, token_matches

__all__ = ["build_app"]

_HERE = Path(__file__).parent
Handler = Callable[[Request], Awaitable[Response]]

# Markers the Recorder leaves where it redacted or hid something: shown highlighted.
_MARKERS = sorted({"[REDACTED]", *(r for _, r in BUILTIN_RULES.values() if isinstance(r, str)),
                   "[CARD]"}, key=len, reverse=True)
_MARKER_RE = re.compile("|".join(re.escape(m) for m in _MARKERS) + r'|"__hidden__": true')


def _pretty(value: Any) -> Markup:
    """A stored value as pretty JSON, escaped, with redaction and hiding markers marked."""
    if isinstance(value, str):
        text = value
    else:
        text = json.dumps(jsonable(value), indent=2, ensure_ascii=False, sort_keys=False)
    out = []
    last = 0
    for match in _MARKER_RE.finditer(text):
        out.append(str(escape(text[last:match.start()])))
        out.append(f'<mark class="redacted" title="redacted or hidden at capture">'
                   f'{escape(match.group(0))}</mark>')
        last = match.end()
    out.append(str(escape(text[last:])))
    return Markup("".join(out))


def _cost(value: Any, unpriced: int = 0) -> str:
    if value is None:
        return f"unpriced ({unpriced})" if unpriced else "—"
    amount = Decimal(str(value))
    text = f"${amount:,.6f}".rstrip("0").rstrip(".") if amount < 1 else f"${amount:,.2f}"
    return text + (f" + {unpriced} unpriced" if unpriced else "")


def _ms(value: Any) -> str:
    if value is None:
        return "—"
    ms = float(value)
    return f"{ms:.0f} ms" if ms < 1000 else f"{ms / 1000:.2f} s"


def _num(value: Any) -> str:
    return "—" if value is None else f"{int(value):,}"


def _time(value: Any) -> str:
    if value is None:
        return "—"
    text = value if isinstance(value, str) else value.isoformat()
    return text.replace("T", " ")[:19]


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(_HERE / "templates")),
        autoescape=True,  # every stored value is untrusted
        undefined=jinja2.ChainableUndefined,  # optional keys of exclude_none dumps
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(pretty=_pretty, cost=_cost, ms=_ms, num=_num, time=_time)
    env.globals.update(kinds=[k.value for k in RunKind], statuses=[s.value for s in RunStatus])
    return env


def _error(exc: Exception) -> tuple[int, str]:
    if isinstance(exc, NotFoundError):
        return 404, str(exc)
    if isinstance(exc, ConfigError):
        return 400, str(exc)
    return 503, str(exc)


class _Views:
    """Route handlers over one :class:`Source`."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.env = _environment()

    # -- plumbing --------------------------------------------------------------

    async def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await run_in_threadpool(fn, *args)

    def api(self, fn: Callable[[Request], Any]) -> Handler:
        async def handler(request: Request) -> Response:
            try:
                body = await self._call(fn, request)
            except RagtrailError as exc:
                status, message = _error(exc)
                return JSONResponse({"error": message, "status": status}, status_code=status)
            return JSONResponse(body)
        return handler

    def page(self, fn: Callable[[Request], tuple[str, dict[str, Any]] | Response]) -> Handler:
        async def handler(request: Request) -> Response:
            try:
                result = await self._call(fn, request)
            except RagtrailError as exc:
                status, message = _error(exc)
                return self.render("error.html", {"status": status, "message": message},
                                   request, status)
            if isinstance(result, Response):
                return result
            template, context = result
            return self.render(template, context, request)
        return handler

    def render(self, template: str, context: dict[str, Any], request: Request,
               status: int = 200) -> HTMLResponse:
        context = {"request_path": request.url.path, "db_url": self.source.url, **context}
        html = self.env.get_template(template).render(**context)
        return HTMLResponse(html, status_code=status)

    # -- JSON API --------------------------------------------------------------

    def api_traces(self, request: Request) -> Any:
        page = self.source.trace_page(request.query_params)
        return jsonable(page.model_dump())

    def api_detail(self, request: Request) -> Any:
        return self.source.detail(request.path_params["trace_id"])

    def api_answers(self, request: Request) -> Any:
        limit = request.query_params.get("limit")
        if limit and not (limit.isdigit() and int(limit) > 0):
            raise ConfigError(f"limit must be a positive integer, got {limit!r}")
        doc = request.path_params["doc"]
        rows = self.source.answers(doc, int(limit) if limit else None)
        if not rows and self.source.document(doc) is None:
            raise NotFoundError(f"no stored document {doc!r}")
        return {"document": doc, "answers": jsonable(rows)}

    def api_usage(self, request: Request) -> Any:
        by = request.query_params.getlist("by") or ["model"]
        rows = self.source.usage(by, request.query_params.get("since"),
                                 request.query_params.get("until"))
        return {"group_by": by, "rows": jsonable(rows)}

    def api_diff(self, request: Request) -> Any:
        a, b = _pair(request)
        first, second, rows = self.source.diff(a, b)
        return {"a": first.trace_id, "b": second.trace_id, "rows": jsonable(rows)}

    def api_evaluations(self, request: Request) -> Any:
        found = self.source.evaluations(request.query_params)
        return {"evaluations": [evaluation_json(e) for e in found]}

    def api_sessions(self, request: Request) -> Any:
        return {"sessions": jsonable(self.source.sessions())}

    # -- pages -----------------------------------------------------------------

    def traces_page(self, request: Request) -> tuple[str, dict[str, Any]]:
        params = request.query_params
        page = self.source.trace_page(params)
        filters = {name: params.get(name, "") for name in TRACE_FILTERS}
        kept = {k: v for k, v in filters.items() if v}
        if params.get("limit"):
            kept["limit"] = params["limit"]
        next_url = (f"/traces?{urlencode({**kept, 'cursor': page.next_cursor})}"
                    if page.next_cursor else None)
        template = "traces_rows.html" if request.headers.get("hx-request") else "traces.html"
        evaluations = self.source.evaluations_by_trace([t.trace_id for t in page.traces])
        return template, {"page": page, "filters": filters, "next_url": next_url,
                          "evaluations": evaluations, "title": "Traces"}

    def trace_page(self, request: Request) -> tuple[str, dict[str, Any]]:
        detail = self.source.detail(request.path_params["trace_id"])
        selected = request.query_params.get("run") or (detail["runs"][0]["id"]
                                                       if detail["runs"] else None)
        context = _trace_context(detail, selected)
        context["title"] = f"Trace {detail['trace_id']}"
        return "trace.html", context

    def run_fragment(self, request: Request) -> tuple[str, dict[str, Any]]:
        detail = self.source.detail(request.path_params["trace_id"])
        run_id = request.path_params["run_id"]
        if not any(run["id"] == run_id for run in detail["runs"]):
            raise NotFoundError(f"trace {detail['trace_id']} has no run {run_id!r}")
        return "run_panel.html", _trace_context(detail, run_id)

    def lineage_page(self, request: Request) -> tuple[str, dict[str, Any]]:
        found = self.source.lineage(request.path_params["trace_id"])
        rows = stage_table(found)
        return "lineage.html", {"lineage": found, "rows": rows,
                                "citations": [r for r in rows if r["citation"]],
                                "title": f"Lineage {found.trace_id}"}

    def document_page(self, request: Request) -> tuple[str, dict[str, Any]]:
        doc = request.path_params["doc"]
        stored = self.source.document(doc)
        answers = self.source.answers(stored.content_hash if stored else doc)
        if stored is None and not answers:
            raise NotFoundError(f"no stored document {doc!r}")
        return "document.html", {"doc": stored, "doc_key": doc, "answers": answers,
                                 "title": f"Document {stored.document_id if stored else doc}"}

    def usage_page(self, request: Request) -> tuple[str, dict[str, Any]]:
        since = request.query_params.get("since") or None
        until = request.query_params.get("until") or None
        tables, by_day = self.source.usage_views(since, until)
        chart = {
            "days": sorted({str(r.group["day"]) for r in by_day}),
            "series": _day_series(by_day),
        }
        return "usage.html", {"tables": tables, "chart": chart, "since": since or "",
                              "until": until or "", "title": "Usage"}

    def evaluations_page(self, request: Request) -> tuple[str, dict[str, Any]]:
        params = request.query_params
        found = [evaluation_json(e) for e in self.source.evaluations(params)]
        filters = {name: params.get(name, "") for name in EVALUATION_FILTERS}
        return "evaluations.html", {"evaluations": found, "filters": filters,
                                    "title": "Evaluations"}

    def sessions_page(self, request: Request) -> tuple[str, dict[str, Any]]:
        return "sessions.html", {"sessions": self.source.sessions(), "title": "Sessions"}

    def session_page(self, request: Request) -> tuple[str, dict[str, Any]]:
        session_id = request.path_params["session_id"]
        turns = self.source.session_turns(session_id)
        if not turns:
            raise NotFoundError(f"no stored trace in session {session_id!r}")
        tokens = sum(t.total_tokens for t in turns)
        priced = [t.total_cost for t in turns if t.total_cost is not None]
        return "session.html", {
            "session_id": session_id, "turns": turns, "total_tokens": tokens,
            "total_cost": sum(priced, Decimal(0)) if priced else None,
            "unpriced": sum(t.unpriced_calls for t in turns),
            "title": f"Session {session_id}"}

    def diff_page(self, request: Request) -> tuple[str, dict[str, Any]]:
        a = request.query_params.get("a", "")
        b = request.query_params.get("b", "")
        if not a or not b:
            return "diff.html", {"a": a, "b": b, "rows": None, "title": "Diff"}
        first, second, rows = self.source.diff(a, b)
        return "diff.html", {"a": first.trace_id, "b": second.trace_id,
                             "rows": jsonable(rows), "title": "Diff"}

    async def login(self, request: Request, token: str | None) -> Response:
        if request.method == "GET" or token is None:
            return RedirectResponse("/traces", status_code=303)
        body = (await request.body()).decode("utf-8", "replace")
        given = parse_qs(body).get("token", [""])[0]
        if not token_matches(given, token):
            from ._security import _LOGIN_PAGE
            return HTMLResponse(_LOGIN_PAGE, status_code=401)
        response = RedirectResponse("/traces", status_code=303)
        response.set_cookie(COOKIE, given, httponly=True, samesite="strict",
                            secure=request.url.scheme == "https")
        return response


def _pair(request: Request) -> tuple[str, str]:
    a = request.query_params.get("a")
    b = request.query_params.get("b")
    if not a or not b:
        raise ConfigError("diff needs two trace ids: ?a=...&b=...")
    return a, b


def _day_series(rows: list[Any]) -> list[dict[str, Any]]:
    days = sorted({str(r.group["day"]) for r in rows})
    index = {day: i for i, day in enumerate(days)}
    series: dict[str, dict[str, Any]] = {}
    for row in rows:
        name = row.group["model"] or "(unknown model)"
        entry = series.setdefault(name, {"model": name, "tokens": [0] * len(days),
                                         "cost": [0.0] * len(days),
                                         "unpriced": [0] * len(days)})
        i = index[str(row.group["day"])]
        entry["tokens"][i] += row.total_tokens
        entry["cost"][i] += float(row.total_cost) if row.total_cost is not None else 0.0
        entry["unpriced"][i] += row.unpriced_calls
    return list(series.values())


#: LLM metadata keys about tools (top level, or under provider_specific) -> their label.
_TOOL_KEYS = {"tools": "Tools offered", "tool_choice": "Tool choice",
              "tool_calls": "Tool calls", "tool_results": "Tool results"}


def _trace_context(detail: dict[str, Any], selected: str | None) -> dict[str, Any]:
    span = detail["trace"]["span_ms"] or 1.0
    bars = []
    for run in detail["runs"]:
        duration = run["duration_ms"] or 0.0
        left = max(0.0, min(1000.0, run["offset_ms"] / span * 1000))
        width = max(2.0, min(1000.0 - left, duration / span * 1000))
        bars.append({"run": run, "x": round(left, 2), "w": round(width, 2)})
    calls = {call["run_id"]: call for call in detail["llm_calls"]}
    run = next((r for r in detail["runs"] if r["id"] == selected), None)
    call = calls.get(selected) if selected else None
    tools = {}
    if call is not None:
        meta = call["llm_metadata"]
        specific = meta.get("provider_specific") or {}
        for key, label in _TOOL_KEYS.items():
            value = meta.get(key) or specific.get(key)
            if value:
                tools[label] = value
    docs_of_run = [d for stage in detail["documents"].values() for d in stage
                   if selected and d["run_id"] == selected]
    return {"detail": detail, "bars": bars, "selected": selected, "run": run, "call": call,
            "tools": tools, "run_docs": docs_of_run, "calls": calls}


def build_app(source: Source, *, token: str | None = None,
              allowed_hosts: frozenset[str] | None = None) -> Starlette:
    """The ASGI app over ``source`` (see :func:`ragtrail.web.create_app`)."""
    views = _Views(source)

    async def root(request: Request) -> Response:
        return RedirectResponse("/traces", status_code=307)

    async def login(request: Request) -> Response:
        return await views.login(request, token)

    async def not_found(request: Request, exc: Exception) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": "no such endpoint", "status": 404}, status_code=404)
        return views.render("error.html", {"status": 404, "message": "no such page",
                                           "title": "Not found"}, request, 404)

    routes = [
        Route("/", root),
        Route("/login", login, methods=["GET", "POST"]),
        Route("/api/v1/traces", views.api(views.api_traces)),
        Route("/api/v1/traces/{trace_id}/detail", views.api(views.api_detail)),
        Route("/api/v1/documents/{doc:path}/answers", views.api(views.api_answers)),
        Route("/api/v1/usage", views.api(views.api_usage)),
        Route("/api/v1/diff", views.api(views.api_diff)),
        Route("/api/v1/sessions", views.api(views.api_sessions)),
        Route("/api/v1/evaluations", views.api(views.api_evaluations)),
        Route("/traces", views.page(views.traces_page)),
        Route("/traces/{trace_id}", views.page(views.trace_page)),
        Route("/traces/{trace_id}/runs/{run_id}", views.page(views.run_fragment)),
        Route("/traces/{trace_id}/lineage", views.page(views.lineage_page)),
        Route("/documents/{doc:path}", views.page(views.document_page)),
        Route("/usage", views.page(views.usage_page)),
        Route("/sessions", views.page(views.sessions_page)),
        Route("/sessions/{session_id:path}", views.page(views.session_page)),
        Route("/diff", views.page(views.diff_page)),
        Route("/evaluations", views.page(views.evaluations_page)),
        Mount("/static", StaticFiles(directory=str(_HERE / "static")), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={404: not_found})
    app.add_middleware(SecurityMiddleware, token=token, allowed_hosts=allowed_hosts)
    app.state.source = source
    return app

