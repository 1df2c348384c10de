"""The web view's ``/quality`` and ``/drift`` pages and their JSON API
(``/api/v1/quality``, ``/api/v1/drift``): the same reports as ``trail.quality()`` and
``trail.drift()``, through the query layer, read-only."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from .. import query
from ..errors import ConfigError

__all__ = ["quality_routes"]

_BY = {"app": "app_name", "model": "model", "provider": "provider", "template": "template"}


def _by(request: Request) -> list[str]:
    given = request.query_params.getlist("by") or ["app"]
    unknown = [b for b in given if b not in _BY]
    if unknown:
        raise ConfigError(f"by must be one of {', '.join(_BY)}, got {', '.join(unknown)}")
    return list(dict.fromkeys(_BY[b] for b in given))


def _quality(views: Any, request: Request) -> query.QualityReport:
    from ..cli._common import parse_when

    params = request.query_params
    return query.quality(views.source.engine, since=parse_when(params.get("since") or None,
                                                               "since"),
                         until=parse_when(params.get("until") or None, "until"),
                         group_by=_by(request))


def _drift(views: Any, request: Request) -> query.DriftReport:
    from ..cli._quality import parse_window

    params = request.query_params
    return query.drift(views.source.engine,
                       baseline=parse_window(params.get("baseline") or "14d..7d", "baseline"),
                       current=parse_window(params.get("current") or "7d", "current"),
                       group_by=_by(request))


def _drift_json(report: query.DriftReport) -> dict[str, Any]:
    return {"drifted": report.drifted,
            "findings": [f.model_dump(mode="json") for f in report.findings],
            **report.model_dump(mode="json")}


def quality_routes(views: Any) -> list[Route]:
    """The routes of both pages and their API, over the app's views."""

    def quality_page(request: Request) -> tuple[str, dict[str, Any]]:
        report = _quality(views, request)
        return "quality.html", {"report": report, "title": "Quality",
                                "since": request.query_params.get("since", ""),
                                "by": request.query_params.get("by", "app")}

    def drift_page(request: Request) -> tuple[str, dict[str, Any]]:
        report = _drift(views, request)
        charts = [{"id": f"dist-{i}", "name": d.name, "group": d.group, "edges": d.edges,
                   "baseline": d.baseline, "current": d.current}
                  for i, d in enumerate(report.distributions)]
        return "drift.html", {"report": report, "charts": charts, "title": "Drift",
                              "baseline": request.query_params.get("baseline", "14d..7d"),
                              "current": request.query_params.get("current", "7d"),
                              "by": request.query_params.get("by", "app")}

    return [
        Route("/api/v1/quality", views.api(lambda r: _quality(views, r).model_dump(mode="json"))),
        Route("/api/v1/drift", views.api(lambda r: _drift_json(_drift(views, r)))),
        Route("/quality", views.page(quality_page)),
        Route("/drift", views.page(drift_page)),
    ]
