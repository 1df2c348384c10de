"""Erasure on request (GDPR Article 17): every trace of one user, or of one session.

The user id is hashed exactly as capture hashes it (:meth:`ragtrail.redaction.Redactor.hash_user`,
HMAC-SHA256 keyed by ``RedactionConfig.user_hash_secret`` or ``RAGTRAIL_USER_HASH_SECRET``),
so the same key must be set as at capture. A session id is stored as given; its receipt
keeps the same keyed hash of it. Each erasure appends a receipt to ``erasure_log`` in
the same transaction: when, the hash (never the raw id), traces and rows per table.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ..errors import ConfigError
from ..redaction import RedactionConfig, Redactor
from ..store._retention import delete_traces
from ..store._tables import erasure_log, runs

__all__ = ["ErasureReceipt", "erase", "erasure_receipts"]

Subject = Literal["user", "session"]


@dataclass(frozen=True)
class ErasureReceipt:
    """What one erasure deleted: the receipt kept in ``erasure_log``."""

    id: str
    erased_at: datetime
    subject: str
    subject_hash: str
    traces: int
    counts: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"id": self.id, "erased_at": self.erased_at.isoformat(),
                "subject": self.subject, "subject_hash": self.subject_hash,
                "traces": self.traces, "rows": dict(self.counts)}


def erase(engine: Engine, *, user_id: str | None = None, session_id: str | None = None,
          redaction: RedactionConfig | None = None) -> ErasureReceipt:
    """Delete every trace of ``user_id`` (or of ``session_id``; give exactly one) and
    append the receipt to ``erasure_log``; one transaction.

    Traces go whole, with their evaluations and judge traces; documents go when no
    remaining trace links to them (a document other users' answers used stays). A
    subject with no traces gets a receipt with zero counts.
    """
    if (user_id is None) == (session_id is None):
        raise ConfigError("erase needs exactly one of user_id or session_id")
    value = user_id if user_id is not None else session_id
    if not isinstance(value, str) or not value:
        raise ConfigError(f"the id to erase must be a non-empty string, got {value!r}")
    subject_hash = Redactor(redaction).hash_user(value)
    if user_id is not None:
        subject: Subject = "user"
        match = runs.c.user_hash == subject_hash
    else:
        subject = "session"
        match = runs.c.session_id == value
    with engine.begin() as conn:
        trace_ids = sorted(set(conn.execute(
            sa.select(runs.c.trace_id).where(match).distinct()).scalars()))
        counts = delete_traces(conn, trace_ids)
        receipt = ErasureReceipt(uuid.uuid4().hex, datetime.now(timezone.utc), subject,
                                 subject_hash, len(trace_ids), counts)
        conn.execute(sa.insert(erasure_log).values(
            id=receipt.id, erased_at=receipt.erased_at, subject=subject,
            subject_hash=subject_hash, traces=receipt.traces, counts=counts))
    return receipt


def erasure_receipts(engine: Engine, *, since: datetime | None = None
                     ) -> list[ErasureReceipt]:
    """The erasure log, oldest first."""
    query = sa.select(erasure_log).order_by(erasure_log.c.erased_at, erasure_log.c.id)
    if since is not None:
        query = query.where(erasure_log.c.erased_at >= since)
    with engine.connect() as conn:
        return [ErasureReceipt(r.id, r.erased_at, r.subject, r.subject_hash, r.traces,
                               dict(r.counts)) for r in conn.execute(query)]
