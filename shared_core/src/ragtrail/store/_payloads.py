"""Runs' inputs and outputs stored once: content-addressed payloads (revision 0011).

In a RAG trace most steps' inputs are earlier steps' outputs (the question, the
retrieved documents, the prompt), and the same documents come back across traces. A
run's payload whose stored JSON text is at least :data:`INLINE_MAX` characters goes
into ``payloads`` once, keyed by :func:`payload_key` of that text (the text as flattened:
already bounded and redacted), inserted if absent; the run keeps the key in
``inputs_ref`` / ``outputs_ref`` and NULL in ``inputs`` / ``outputs``. Smaller payloads
stay inline (a reference and its index entry cost about as much as they do).

Reads resolve references in SQL (:func:`run_columns`, :func:`resolved`): every query
sees the value as it was captured, whichever way it was stored, and rows stored before
revision 0011 (inline) read as they are. Deleting traces deletes the payloads no
remaining run references (``store._retention``).
"""

from __future__ import annotations

import hashlib
from base64 import urlsafe_b64encode
from typing import Any

import sqlalchemy as sa

from ..schemas.flat import RUN_FIELDS
from ._tables import payloads, runs

__all__ = [
    "INLINE_MAX",
    "PAYLOAD_COLUMNS",
    "REF_COLUMNS",
    "payload_key",
    "resolved",
    "run_columns",
]

#: Payloads whose JSON text has fewer characters stay inline. A reference costs its key
#: in the run's row and an entry in the reference's index (about 60 bytes on SQLite);
#: measured on the benchmark chains (BENCHMARKS.md, fifteenth round).
INLINE_MAX = 96
#: (inline column, reference column) of each payload a run stores.
PAYLOAD_COLUMNS = (("inputs", "inputs_ref"), ("outputs", "outputs_ref"))
REF_COLUMNS = frozenset(ref for _column, ref in PAYLOAD_COLUMNS)
#: Positions in a flat run row (``schemas.flat.RUN_FIELDS``) of the payloads.
PAYLOAD_AT = tuple(RUN_FIELDS.index(column) for column, _ref in PAYLOAD_COLUMNS)
_DIGEST = 18  # bytes: 144 bits, 24 characters of URL-safe base64 without padding


def payload_key(text: str) -> str:
    """The key of a payload's stored JSON text: BLAKE2b, 144 bits, URL-safe base64."""
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=_DIGEST).digest()
    return urlsafe_b64encode(digest).decode("ascii")


def resolved(table: sa.FromClause, column: str) -> sa.ColumnElement[Any]:
    """``table``'s ``inputs`` or ``outputs`` (``table``: ``runs`` or an alias of it) as
    stored, inline or through its reference."""
    ref = table.c[f"{column}_ref"]
    body = sa.select(payloads.c.body).where(payloads.c.hash == ref).scalar_subquery()
    return sa.func.coalesce(table.c[column], body, type_=runs.c[column].type)


def run_columns(table: sa.FromClause = runs) -> list[sa.ColumnElement[Any]]:
    """Every column of a run as captured: ``select(*run_columns(runs))`` reads what
    ``select(runs)`` did before payloads were stored apart (references resolved, the
    reference columns left out)."""
    out: list[sa.ColumnElement[Any]] = []
    for column in table.c:
        if column.key in REF_COLUMNS:
            continue
        if column.key in ("inputs", "outputs"):
            out.append(resolved(table, column.key).label(column.key))
        else:
            out.append(column)
    return out
