"""The web view at scale: server time of its pages and API next to the query layer's own.

Uses the queries-at-scale SQLite database (``scale_traces`` traces of 10 runs: 1,000,000
runs by default; generated once and cached, see ``_scale``), opened read-only as
``ragtrail ui`` opens it. Server time is measured inside the ASGI app (from the request
reaching it to the last byte of the response leaving it), so the HTTP client is not
counted. Targets (issue 23): trace list p50 <= 50 ms, trace detail <= 30 ms, usage page
<= 300 ms. The usage page reads ``usage_rollup`` (revision 0008; an older cached database
is upgraded first, its fill timed as ``upgrade_s``).
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ._common import Sizes, percentile, say

TARGETS_MS = {"traces_page": 50.0, "trace_detail_page": 30.0, "usage_page": 300.0}


class _ServerTimer:
    """ASGI middleware keeping the server time of every request."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.times: list[float] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        await self.app(scope, receive, send)
        self.times.append(time.perf_counter() - start)


def _stats(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {"p50_ms": statistics.median(ordered) * 1e3, "p90_ms": percentile(ordered, 0.9) * 1e3,
            "max_ms": ordered[-1] * 1e3, "n": len(ordered)}


def _two_passes(call: Callable[[Any], Any], inputs: list[Any],
                clock: Callable[[], list[float]] | None = None) -> dict[str, float]:
    """Time ``call`` on every input twice (cold then warm); stats of the warm pass.

    With ``clock`` the times are the server's (read after each pass); otherwise the
    wall time of each call."""
    passes = []
    for _ in range(2):
        times: list[float] = []
        server = clock() if clock else None
        if server is not None:
            server.clear()
        for value in inputs:
            start = time.perf_counter()
            call(value)
            times.append(time.perf_counter() - start)
        passes.append(list(server) if server is not None else times)
    out = _stats(passes[1])
    out["first_pass_p50_ms"] = statistics.median(passes[0]) * 1e3
    return out


def run(sizes: Sizes, cache_dir: Path) -> dict[str, Any]:
    try:
        from starlette.testclient import TestClient

        from ragtrail import query
        from ragtrail.query._browse import trace_page
        from ragtrail.web import create_app
    except ImportError as exc:
        say(f"ui skipped: {exc}")
        return {"skipped": f"the web view's extra is not installed ({exc.name})"}
    from . import _scale

    traces = sizes.scale_traces
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"{_scale._key(traces)}.db"
    url = f"sqlite:///{path}"
    if path.exists() and not _scale._complete(sa.create_engine(url)):
        path.unlink()
    out: dict[str, Any] = {"traces": traces, "runs": None, "targets_ms": TARGETS_MS}
    if not path.exists():
        say(f"ui: generating {traces:,} traces for the scale database")
        out["generate_s"] = _scale._generate(url, traces)
    from ragtrail.store import upgrade_database

    started = time.perf_counter()
    upgrade_database(url)  # a database an earlier ragtrail generated, migrated like a user's
    # Revision 0008 fills usage_rollup from every stored call once (0 s when current).
    out["upgrade_s"] = time.perf_counter() - started
    app = create_app(url)
    engine = app.state.source.engine
    timer = _ServerTimer(app)
    client = TestClient(timer)
    rng = random.Random(23)
    samples = max(3, sizes.scale_samples // 4)
    with engine.connect() as conn:
        out["runs"] = conn.execute(sa.text("select count(*) from runs")).scalar_one()
        out["usage_rollup_rows"] = conn.execute(
            sa.text("select count(*) from usage_rollup")).scalar_one()
        last_call = conn.execute(sa.text("select max(started_at) from llm_calls")).scalar_one()
        roots = [row[0] for row in conn.execute(sa.text(
            "select id from runs where parent_id is null order by id limit :n"), {"n": 2000})]
    trace_ids = rng.sample(roots, min(samples, len(roots)))

    def get(path: str) -> None:
        response = client.get(path)
        assert response.status_code == 200, (path, response.status_code, response.text[:300])

    def server() -> list[float]:
        return timer.times

    ui: dict[str, Any] = {}
    layer: dict[str, Any] = {}
    newest = [None] * samples
    ui["traces_page"] = _two_passes(lambda _: get("/traces"), newest, server)
    ui["traces_api"] = _two_passes(lambda _: get("/api/v1/traces"), newest, server)
    layer["trace_page_50"] = _two_passes(lambda _: trace_page(engine, limit=50), newest)
    layer["traces_50"] = _two_passes(lambda _: query.traces(engine, limit=50), newest)
    cursors = []
    page = trace_page(engine, limit=50)
    for _ in range(samples):
        if page.next_cursor is None:
            break
        cursors.append(page.next_cursor)
        page = trace_page(engine, limit=50, cursor=page.next_cursor)
    if cursors:
        ui["traces_page_next"] = _two_passes(lambda c: get(f"/traces?cursor={c}"), cursors,
                                             server)
    ui["traces_page_text"] = _two_passes(lambda _: get("/traces?q=wal"), newest[:3], server)
    layer["trace_page_text"] = _two_passes(lambda _: trace_page(engine, limit=50, text="wal"),
                                           newest[:3])
    ui["trace_detail_page"] = _two_passes(lambda t: get(f"/traces/{t}"), trace_ids, server)
    ui["trace_detail_api"] = _two_passes(lambda t: get(f"/api/v1/traces/{t}/detail"),
                                         trace_ids, server)
    layer["lineage"] = _two_passes(lambda t: query.lineage(engine, t), trace_ids)
    ui["lineage_page"] = _two_passes(lambda t: get(f"/traces/{t}/lineage"), trace_ids, server)
    heavy = [None] * max(2, min(3, samples // 10))
    ui["usage_page"] = _two_passes(lambda _: get("/usage"), heavy, server)
    # since=30d opened at 12:30 UTC on the data's last day (the generated calls end months
    # ago, so a literal 30d is empty): a range off the rollup's buckets, whose partial
    # bucket at the start is read from the calls.
    since_30d = "30d" if last_call is None else (
        f"{datetime.fromisoformat(str(last_call)[:10]) - timedelta(days=30):%Y-%m-%d}T12:30:00Z")
    out["usage_30d_since"] = since_30d
    ui["usage_page_30d"] = _two_passes(lambda _: get(f"/usage?since={since_30d}"), heavy,
                                       server)
    # the page's two grouped queries (its tables and chart are folded from them)
    layer["usage_page_queries"] = _two_passes(
        lambda _: [query.usage(engine, group_by=g)
                   for g in ("model,provider,template,day", "app_name")], heavy)
    ui["usage_api_model"] = _two_passes(lambda _: get("/api/v1/usage?by=model"), heavy, server)
    layer["usage_model"] = _two_passes(lambda _: query.usage(engine, group_by="model"), heavy)
    ui["sessions_page"] = _two_passes(lambda _: get("/sessions"), heavy, server)
    ui["evaluations_page"] = _two_passes(lambda _: get("/evaluations"), heavy, server)
    out["ui_server"] = ui
    out["query_layer"] = layer
    out["met"] = {name: ui[name]["p50_ms"] <= target for name, target in TARGETS_MS.items()}
    engine.dispose()
    for group, values in (("ui", ui), ("query", layer)):
        for name, stats in values.items():
            target = TARGETS_MS.get(name)
            mark = "" if target is None else (
                f"  target {target:.0f} ms {'met' if stats['p50_ms'] <= target else 'MISSED'}")
            say(f"  ui {group:5} {name:22} p50 {stats['p50_ms']:8.2f} ms  p90 "
                f"{stats['p90_ms']:8.2f} ms  (cold p50 {stats['first_pass_p50_ms']:8.2f}){mark}")
    say(f"  ui usage page p50 {ui['usage_page']['p50_ms']:.1f} ms server time, its two "
        f"queries {layer['usage_page_queries']['p50_ms']:.1f} ms in the query layer "
        f"(usage_rollup: {out['usage_rollup_rows']:,} rows; upgrade {out['upgrade_s']:.1f} s); "
        f"since=30d {ui['usage_page_30d']['p50_ms']:.1f} ms")
    return out
