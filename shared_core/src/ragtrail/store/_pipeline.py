"""PostgreSQL's pipelining: the next batch is prepared while the server stores this one.

A write to PostgreSQL mostly waits on the server with the interpreter released. The
store declares so (``StoreCapabilities(prepare_ahead=True)``), and the writer then
takes the next batch (from its queue or its spool) on a helper thread while a write
is in flight, and hands it to :func:`prepare_rows`: rows encoded and COPY data built,
all without a connection, so the writer thread only sends them
(:meth:`SqlStore.write_prepared`). SQLite's inserts run in this process and hold the
interpreter: preparing ahead was measured slower there, so it does not declare it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from ..schemas.flat import AnyRecord
from ._bulk import copy_text
from ._rows import Encoded, EncodeError, encode_batch

__all__ = ["PreparedRows", "prepare_rows"]

#: Preparing runs on the writer's helper thread while the writer thread waits on the
#: server. Between parts of this many records it hands the interpreter over, so the
#: writer thread, back from a round trip, gets it at once instead of after up to
#: CPython's switch interval (5 ms), which it would otherwise wait at every round trip
#: of a batch. Measured (ingestion writer into PostgreSQL, three interleaved pairs):
#: 7,538-8,599 runs/s without, 10,782-12,625 with parts of 20 (50: 9,511-11,524).
_PREPARE_CHUNK = 20


@dataclass(frozen=True)
class PreparedRows:
    """A batch's rows encoded for one dialect (and on PostgreSQL its COPY data)."""

    encoded: Encoded
    dialect: str


def _hand_over() -> None:
    """Let a thread waiting for the interpreter lock take it now (sleep(0) releases it)."""
    time.sleep(0)


def _copy_text_handing_over(rows: list[Sequence[object]]) -> bytes:
    """``copy_text(rows)``, handing the interpreter over between parts."""
    step = 4 * _PREPARE_CHUNK  # rows are cheaper than records
    parts = []
    for start in range(0, len(rows), step):
        parts.append(copy_text(rows[start:start + step]))
        _hand_over()
    return b"".join(parts)


def prepare_rows(records: Sequence[AnyRecord], dialect: str, *,
                 copy: bool) -> PreparedRows | None:
    """The records' rows encoded in parts (handing the interpreter over between them),
    with COPY data when ``copy`` (PostgreSQL); None when some record cannot be encoded
    (the plain write then reports it)."""
    encoded = Encoded()
    try:
        for start in range(0, len(records), _PREPARE_CHUNK):
            encode_batch(records[start:start + _PREPARE_CHUNK], dialect, into=encoded)
            _hand_over()
    except EncodeError:
        return None
    if copy:
        encoded.copy_data = {table: _copy_text_handing_over(rows)
                             for table, rows in encoded.tables() if rows}
    return PreparedRows(encoded, dialect)
