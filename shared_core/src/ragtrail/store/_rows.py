"""Records -> driver-ready row tuples for one backend.

A record arrives as a :class:`CapturedRun` (from the writer's memory queue), as a
:class:`~ragtrail.schemas.flat.FlatRecord` (read back from the writer's disk spool) or,
from a spool written by an older version, as a :class:`SerializedRecord`. All become
the same flat rows (:func:`~ragtrail.schemas.flat.flatten`: JSON columns as JSON text,
every string free of NUL and lone surrogates), so a replayed record is stored exactly
like a fresh one; here only timestamps and money take the dialect's form.

Column conventions (see ``_types``): timestamps are naive UTC text
``YYYY-MM-DD HH:MM:SS.ffffff`` on SQLite and ISO 8601 text (parsed by the server) on
PostgreSQL; money is an integer of 1e-10 units on SQLite and an exact decimal on
PostgreSQL; JSON columns are JSON text, ``None`` as SQL NULL.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from ..schemas.flat import (
    DOCUMENT_FIELDS,
    LINK_FIELDS,
    LLM_FIELDS,
    LLM_MONEY,
    LLM_TIME,
    RUN_FIELDS,
    RUN_TIMES,
    TOOL_FIELDS,
    AnyRecord,
    FlatRecord,
    flat_rows,
    flatten,
    sqlite_time,
)
from ..schemas.record import CapturedRun, SerializedRecord
from . import _tables
from ._payloads import INLINE_MAX, PAYLOAD_AT, PAYLOAD_COLUMNS, payload_key
from ._types import MONEY_PLACES, quantize_money

__all__ = [
    "TABLE_ORDER",
    "EncodeError",
    "Encoded",
    "encode_batch",
    "json_serializer",
]

#: Insert order: parents before children (payloads before the runs that reference them).
TABLE_ORDER = ("payloads", "runs", "llm_calls", "documents", "document_links",
               "tool_definitions")
#: A stored run's row: the flat run row, then its payloads' references (``_payloads``).
RUN_COLUMNS = (*RUN_FIELDS, *(ref for _column, ref in PAYLOAD_COLUMNS))

COLUMNS: dict[str, tuple[str, ...]] = {
    name: tuple(c.name for c in _tables.metadata.tables[name].columns) for name in TABLE_ORDER
}
# Flat rows are inserted as they are (runs with their references appended): their layout
# must be the tables' column order.
assert COLUMNS == {"payloads": ("hash", "body"), "runs": RUN_COLUMNS, "llm_calls": LLM_FIELDS,
                   "documents": DOCUMENT_FIELDS, "document_links": LINK_FIELDS,
                   "tool_definitions": TOOL_FIELDS}, COLUMNS
#: Primary-key columns of each table, in key order.
KEYS: dict[str, tuple[str, ...]] = {
    name: tuple(c.name for c in _tables.metadata.tables[name].primary_key.columns)
    for name in TABLE_ORDER
}
_RUN_START, _RUN_END = RUN_TIMES
_LINK_KEY = tuple(LINK_FIELDS.index(name) for name in KEYS["document_links"])
assert _LINK_KEY == (0, 1, 2), _LINK_KEY  # links are keyed by their first three values
assert KEYS["runs"] == ("id",) and KEYS["llm_calls"] == ("run_id",), KEYS
assert KEYS["documents"] == ("content_hash",) and KEYS["payloads"] == ("hash",), KEYS
_INPUTS_AT, _OUTPUTS_AT = PAYLOAD_AT
_INPUTS_REF_AT, _OUTPUTS_REF_AT = len(RUN_FIELDS), len(RUN_FIELDS) + 1


class EncodeError(ValueError):
    """A record whose data no backend can store (the message says which value)."""


def json_serializer(value: Any) -> str:
    """The store engines' JSON serializer for values bound through SQLAlchemy."""
    if value is None:
        return "null"  # SQLAlchemy stores a None JSON value as JSON null
    return json.dumps(value)


def _time_sqlite(value: str | None) -> str | None:
    """ISO UTC text (``...Z``) -> SQLite's naive UTC ``YYYY-MM-DD HH:MM:SS.ffffff``."""
    if value is None:
        return None
    if len(value) == 27 and value[19] == "." and value[26] == "Z":
        return f"{value[:10]} {value[11:26]}"
    try:  # another offset or precision (a hand-edited spool line)
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (ValueError, TypeError, AttributeError) as exc:
        raise EncodeError(f"not a timestamp: {value!r}") from exc
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def _time_pg(value: str | None) -> str | None:
    return value  # ISO 8601 with its offset: the server parses it exactly


def _money_sqlite(value: Any) -> int | None:
    if value is None:
        return None
    return int(_money(value).scaleb(MONEY_PLACES))


def _money_pg(value: Any) -> str | None:
    return None if value is None else str(_money(value))


def _money(value: Any) -> Decimal:
    try:
        return quantize_money(value if isinstance(value, Decimal) else Decimal(str(value)))
    except (ValueError, InvalidOperation) as exc:
        raise EncodeError(str(exc)) from exc


class Encoded:
    """The rows of a batch per table, one per primary key (the first occurrence wins)."""

    def __init__(self) -> None:
        # Keyed by the primary key (the NUL-joined columns for a composite key).
        self.rows: dict[str, dict[str, Sequence[Any]]] = {
            name: {} for name in TABLE_ORDER
        }
        self._sorted: list[tuple[str, list[Sequence[Any]]]] | None = None
        #: PostgreSQL COPY data per table, when built ahead (see ``SqlStore.prepare_batch``).
        self.copy_data: dict[str, bytes] = {}

    def tables(self) -> list[tuple[str, list[Sequence[Any]]]]:
        """(table, rows sorted by key) in insert order: parents before children.

        Sorting gives concurrent writers one lock order, so they cannot deadlock.
        """
        if self._sorted is None:
            self._sorted = [(name, [rows[key] for key in sorted(rows)])
                            for name, rows in ((name, self.rows[name]) for name in TABLE_ORDER)]
        return self._sorted


class _Dialect:
    """Puts a flat record's rows into one batch, timestamps and money in dialect form."""

    def __init__(self, dialect: str) -> None:
        sqlite = dialect == "sqlite"
        self.time = _time_sqlite if sqlite else _time_pg
        self.money = _money_sqlite if sqlite else _money_pg
        # A CapturedRun is flattened straight to SQLite's timestamps (one pass).
        self.flat_time = sqlite_time if sqlite else None

    def flat(self, record: AnyRecord) -> tuple[FlatRecord, bool]:
        """The record's flat rows, and whether their timestamps are in this dialect's
        form already."""
        if self.flat_time is not None and type(record) is CapturedRun:
            return flat_rows(record, self.flat_time), True
        return flat_record(record), False

    def add(self, out: Encoded, flat: FlatRecord, times_done: bool = False) -> None:
        time = self.time
        run = [*flat.run, None, None]  # the references: see _payloads
        if time is not _time_pg and not times_done:  # PostgreSQL takes the ISO text as it is
            run[_RUN_START] = time(run[_RUN_START])
            run[_RUN_END] = time(run[_RUN_END])
        text = run[_INPUTS_AT]
        if text is not None and len(text) >= INLINE_MAX:
            run[_INPUTS_REF_AT] = _payload(out, text)
            run[_INPUTS_AT] = None
        text = run[_OUTPUTS_AT]
        if text is not None and len(text) >= INLINE_MAX:
            run[_OUTPUTS_REF_AT] = _payload(out, text)
            run[_OUTPUTS_AT] = None
        out.rows["runs"].setdefault(run[0], run)
        if flat.llm is not None:
            llm = list(flat.llm)
            if not times_done:
                llm[LLM_TIME] = time(llm[LLM_TIME])
            money = self.money
            for at in LLM_MONEY:
                llm[at] = money(llm[at])
            out.rows["llm_calls"].setdefault(llm[0], llm)
        docs = out.rows["documents"]
        for doc in flat.documents:
            docs.setdefault(doc[0], doc)
        links = out.rows["document_links"]
        for link in flat.links:
            # One string for the key (run, document, stage): strings cost the garbage
            # collector nothing, and NUL (never in stored text) keeps the key order.
            links.setdefault(f"{link[0]}\x00{link[1]}\x00{link[2]}", link)
        if flat.tools:
            tools = out.rows["tool_definitions"]
            for tool in flat.tools:
                tools.setdefault(tool[0], tool)


def _payload(out: Encoded, text: str) -> str:
    """The key of a payload's JSON text, its row added to the batch (once per key)."""
    key = payload_key(text)
    out.rows["payloads"].setdefault(key, (key, text))
    return key


_DIALECTS = {"sqlite": _Dialect("sqlite"), "postgresql": _Dialect("postgresql")}


def flat_record(record: AnyRecord) -> FlatRecord:
    """Any record the writer hands over, as flat rows (raises ValueError if it cannot be)."""
    if isinstance(record, FlatRecord):
        return record
    if isinstance(record, SerializedRecord):  # a plain line of an older spool
        record = record.to_record()
    return flatten(record)


def encode_batch(records: Sequence[AnyRecord], dialect: str, *,
                 into: Encoded | None = None) -> Encoded:
    """The deduplicated rows of ``records`` for ``dialect`` ("sqlite" or "postgresql"),
    added to ``into`` if given (a batch encoded in parts).

    Raises :class:`EncodeError` when some record holds a value no backend can store.
    """
    adder = _DIALECTS["sqlite" if dialect == "sqlite" else "postgresql"]
    out = Encoded() if into is None else into
    for record in records:
        try:
            adder.add(out, *adder.flat(record))
        except EncodeError:
            raise
        except (KeyError, TypeError, AttributeError, ValueError, IndexError) as exc:
            raise EncodeError(f"record {_record_id(record)} cannot be stored: "
                              f"{type(exc).__name__}: {exc}") from exc
    return out


def _record_id(record: AnyRecord) -> str:
    try:
        return str(record.id)
    except Exception:  # reporting must not fail
        return "?"
