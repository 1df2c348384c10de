"""``resolve_id(engine, text)``: a run or trace id from the id or a unique prefix of it.

As git resolves abbreviated hashes: an exact id wins; otherwise the one stored id that
starts with ``text``; several are an error listing them. Ids are compared byte-wise
on both backends (SQLite's BINARY collation, PostgreSQL's ``"C"`` on ragtrail's key
columns), so a prefix is a range on the primary-key and trace indexes.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ..errors import AmbiguousIdError, NotFoundError
from ..schemas import bounded_key
from ..store import _tables

__all__ = ["MIN_PREFIX", "resolve_id"]

#: Shortest prefix looked up (git's minimum too).
MIN_PREFIX = 4
#: Candidates named in an ambiguity error.
_SHOWN = 10

_runs = _tables.runs


def _upper_bound(prefix: str) -> str | None:
    """The smallest string greater than every string starting with ``prefix``."""
    last = ord(prefix[-1])
    if last >= 0x10FFFF:
        return None
    following = last + 1 if not 0xD7FF <= last < 0xE000 else 0xE000  # skip surrogates
    return prefix[:-1] + chr(following)


def _exact(conn: Connection, key: str) -> bool:
    for column in (_runs.c.id, _runs.c.trace_id):
        if conn.execute(sa.select(column).where(column == key).limit(1)).first():
            return True
    return False


def _starting_with(conn: Connection, prefix: str) -> list[str]:
    found: set[str] = set()
    upper = _upper_bound(prefix)
    for column in (_runs.c.id, _runs.c.trace_id):
        conditions = [column >= prefix] + ([column < upper] if upper is not None else [])
        stmt = (sa.select(column).where(*conditions).distinct().order_by(column)
                .limit(_SHOWN + 1))
        found.update(str(value) for value in conn.execute(stmt).scalars())
    return sorted(value for value in found if value.startswith(prefix))


def resolve_id(engine: Engine, text: str) -> str:
    """The stored run or trace id ``text`` is, or the only one it is a prefix of.

    Raises :class:`~ragtrail.errors.NotFoundError` when none matches (prefixes shorter
    than :data:`MIN_PREFIX` are not looked up) and
    :class:`~ragtrail.errors.AmbiguousIdError`, naming candidates, when several do.
    """
    text = str(text).strip()
    key = bounded_key(text)  # as the Recorder stored it
    with engine.connect() as conn:
        if text and _exact(conn, key):
            return key
        matches = _starting_with(conn, text) if len(text) >= MIN_PREFIX else []
    if len(matches) == 1:
        return matches[0]
    if not matches:
        hint = f" (a prefix needs at least {MIN_PREFIX} characters)" if len(text) < MIN_PREFIX \
            else ""
        raise NotFoundError(f"no run or trace with id {text!r} is stored{hint}")
    shown = matches[:_SHOWN]
    more = ", ..." if len(matches) > _SHOWN else ""
    raise AmbiguousIdError(
        f"id prefix {text!r} is ambiguous; candidates: {', '.join(shown)}{more}", shown)
