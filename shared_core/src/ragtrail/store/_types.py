"""Column types that behave the same on SQLite and PostgreSQL.

* :class:`UtcDateTime`: timezone-aware UTC datetimes with microseconds, both ways.
  SQLite keeps naive UTC text (``YYYY-MM-DD HH:MM:SS.ffffff``, which sorts and
  prefixes by day); PostgreSQL keeps ``timestamptz``.
* :class:`Money`: exact ``Decimal`` to 10 decimal places. PostgreSQL keeps
  ``numeric(20, 10)``; SQLite keeps an integer of 1e-10 units, because SQLite's
  NUMERIC affinity goes through a float and would lose digits. Both sum exactly in SQL.
* :data:`JSON_VALUE`: JSON on SQLite, JSONB on PostgreSQL.
* :func:`utc_day`: the UTC calendar day of a timestamp column as ``YYYY-MM-DD`` text.
"""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from ..schemas import MAX_MONEY

__all__ = ["JSON_VALUE", "KEY", "MONEY_PLACES", "Money", "UtcDateTime", "utc_day"]

#: Decimal places kept in cost columns: 1e-10 of a currency unit. The full-precision
#: values also live in the LLM call's JSON metadata.
MONEY_PLACES = 10
_MONEY_QUANTUM = Decimal(1).scaleb(-MONEY_PLACES)

JSON_VALUE = sa.JSON().with_variant(JSONB(), "postgresql")

#: Text compared byte by byte: ids, hashes, paths, and the names queries filter on.
#: SQLite compares text that way already (BINARY). On PostgreSQL the database's
#: collation would apply (strcoll for every comparison an index insert makes, and an
#: order for paths that can differ from SQLite's); ``COLLATE "C"`` is byte order.
#: Measured: writing the outage test's records into PostgreSQL ~16 % faster.
KEY = sa.String().with_variant(sa.String(collation="C"), "postgresql")

_SQLITE = "sqlite"


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """A timestamp stored in UTC and read back timezone-aware (UTC)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        utc = value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(
            timezone.utc
        )
        return utc.replace(tzinfo=None) if dialect.name == _SQLITE else utc

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # SQLite aggregates can hand back raw text
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)  # type: ignore[no-any-return]
        return value.astimezone(timezone.utc)  # type: ignore[no-any-return]


def quantize_money(value: Any) -> Decimal:
    """``value`` as a Decimal rounded to :data:`MONEY_PLACES` places.

    Raises ValueError for values that are not finite or not below ``MAX_MONEY``.
    """
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError) as exc:
        raise ValueError(f"not a money amount: {value!r}") from exc
    if not amount.is_finite() or abs(amount) >= MAX_MONEY:
        raise ValueError(f"money amount out of range: {value!r}")
    return amount.quantize(_MONEY_QUANTUM)


class Money(sa.types.TypeDecorator[Decimal]):
    """An exact Decimal with 10 decimal places on both backends."""

    impl = sa.Numeric(20, MONEY_PLACES, asdecimal=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == _SQLITE:
            return dialect.type_descriptor(sa.BigInteger())
        return dialect.type_descriptor(sa.Numeric(20, MONEY_PLACES, asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Decimal | int | None:
        if value is None:
            return None
        amount = quantize_money(value)
        return int(amount.scaleb(MONEY_PLACES)) if dialect.name == _SQLITE else amount

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if dialect.name == _SQLITE:
            # scaleb keeps the same coefficient/exponent PostgreSQL's numeric(20, 10)
            # gives back, so both backends return identical Decimals.
            return Decimal(int(value)).scaleb(-MONEY_PLACES)
        return Decimal(value)


class utc_day(FunctionElement[str]):
    """``YYYY-MM-DD`` (UTC) of a :class:`UtcDateTime` column, identical on both backends."""

    type = sa.String()
    name = "utc_day"
    inherit_cache = True


@compiles(utc_day, "sqlite")
def _utc_day_sqlite(element: utc_day, compiler: SQLCompiler, **kw: Any) -> str:
    # Stored as naive UTC text 'YYYY-MM-DD HH:MM:SS.ffffff': the day is its prefix.
    return f"substr({compiler.process(element.clauses, **kw)}, 1, 10)"


@compiles(utc_day, "postgresql")
def _utc_day_postgresql(element: utc_day, compiler: SQLCompiler, **kw: Any) -> str:
    # AT TIME ZONE 'UTC' makes the day independent of the session's TimeZone.
    return f"to_char(({compiler.process(element.clauses, **kw)}) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"


@compiles(utc_day)
def _utc_day_default(element: utc_day, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST(CAST({compiler.process(element.clauses, **kw)} AS DATE) AS VARCHAR(10))"
