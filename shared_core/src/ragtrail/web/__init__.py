"""``ragtrail.web``: a local web view of what ragtrail stored (``pip install 'ragtrail[ui]'``).

    from ragtrail.web import create_app
    app = create_app("sqlite:///ragtrail.db")   # any ASGI server: uvicorn, hypercorn, ...

Pages (traces, trace waterfall, lineage, documents, usage, sessions, diff,
evaluations) and a
read-only JSON API under ``/api/v1``, read through :mod:`ragtrail.query` only. A URL
opens the database read-only; a :class:`~ragtrail.Trail` is read through its own store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from ..trail import Trail

__all__ = ["create_app"]


def create_app(url_or_trail: str | Trail | None = None, *, token: str | None = None,
               allowed_hosts: frozenset[str] | None = None, token_name: str | None = None,
               audit: bool = True) -> Starlette:
    """The web view as an ASGI app, for ``ragtrail ui`` or an application's own server.

    ``url_or_trail``: a database URL (opened read-only; None means ``$RAGTRAIL_URL``, else
    ``./ragtrail.db``) or a :class:`~ragtrail.Trail` (read through its store, never
    written by the view). ``token``: when given, every request must carry it (header
    ``Authorization: Bearer TOKEN``, ``X-Ragtrail-Token``, or the cookie set by the
    login form), else 401. ``allowed_hosts``: Host header names served (None: any).
    ``audit``: record each read of a trace (page or API) in ``read_audit`` as
    ``token_name`` (default ``token`` with a token, ``local`` without), through a small
    connection of its own that only inserts audit lines.
    """
    try:
        from ._app import build_app
        from ._data import Source
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        from ..errors import ConfigError

        raise ConfigError(f"the web view needs its extra: pip install 'ragtrail[ui]' "
                          f"({exc.name} is missing)") from None
    from ..trail import Trail

    if isinstance(url_or_trail, Trail):
        source = Source(engine=url_or_trail.store.engine, redactor=url_or_trail.redactor,
                        url=url_or_trail.url)
    else:
        reader = Trail.open_readonly(url_or_trail)  # the CLI's read-only opening
        source = Source(engine=reader.store.engine, redactor=reader.redactor, url=reader.url)
        from ..governance.roles import check_rights

        try:
            check_rights(reader.store.engine, "read", source.url)
        except BaseException:
            reader.close()
            raise
    app = build_app(source, token=token, allowed_hosts=allowed_hosts)
    if audit:
        from ..governance.audit import AuditLog
        from ._audit import ReadAuditMiddleware

        log = (AuditLog(engine=url_or_trail.store.engine) if isinstance(url_or_trail, Trail)
               else AuditLog(url_or_trail))
        app.add_middleware(ReadAuditMiddleware, log=log,
                           reader=token_name or ("token" if token else "local"))
        app.state.audit = log
    return app
