"""The audit of reads: who read which trace, when, through which view.

The web view opens the database read-only; its audit writes go through a separate
small engine (:class:`AuditLog`) used only for ``INSERT INTO read_audit``. On PostgreSQL
the role it connects as needs only ``INSERT`` on ``read_audit`` (``ragtrail db roles``
grants exactly that to the reader role): it can add lines, never change or delete them.
"""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ..store._tables import read_audit

__all__ = ["AuditLog", "ReadRecord", "reads"]

logger = logging.getLogger("ragtrail.audit")


@dataclass(frozen=True)
class ReadRecord:
    """One audited read."""

    id: str
    read_at: datetime
    reader: str
    view: str
    trace_id: str | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"id": self.id, "read_at": self.read_at.isoformat(), "reader": self.reader,
                "view": self.view, "trace_id": self.trace_id}


class AuditLog:
    """Appends audit lines through its own writable engine (insert only).

    ``url`` is the database the view reads (``sqlite:///file`` or PostgreSQL), or
    ``engine`` a writable engine to it (a capturing Trail's). A write that fails is
    logged and counted in :attr:`failed`, never raised into the page.
    """

    def __init__(self, url: str | None = None, *, engine: Engine | None = None) -> None:
        from ..store._url import EngineConfig, create_store_engine, parse_url

        self._owned = engine is None
        self._engine = engine if engine is not None else create_store_engine(
            parse_url(url), EngineConfig())
        self._lock = threading.Lock()
        self.failed = 0

    def record(self, reader: str, view: str, trace_id: str | None) -> None:
        """Append one line: ``reader`` read ``trace_id`` through ``view``."""
        try:
            with self._engine.begin() as conn:
                conn.execute(sa.insert(read_audit).values(
                    id=uuid.uuid4().hex, read_at=datetime.now(timezone.utc),
                    reader=reader, view=view, trace_id=trace_id))
        except sa.exc.SQLAlchemyError:
            with self._lock:
                self.failed += 1
            logger.warning("could not write the read audit line", exc_info=True)

    def close(self) -> None:
        """Release the audit engine's connections (an engine given is left open)."""
        if self._owned:
            self._engine.dispose()


def reads(engine: Engine, *, since: datetime | None = None) -> list[ReadRecord]:
    """The read audit, oldest first (``since``: from then on)."""
    query = sa.select(read_audit).order_by(read_audit.c.read_at, read_audit.c.id)
    if since is not None:
        query = query.where(read_audit.c.read_at >= since)
    with engine.connect() as conn:
        return [ReadRecord(r.id, r.read_at, r.reader, r.view, r.trace_id)
                for r in conn.execute(query)]
