"""Which database failures are worth retrying, and one-line reasons for messages.

Transient (retry later, spool meanwhile): the database is locked or busy, the
connection dropped or was refused, the server is shutting down or out of resources,
a serialization failure or deadlock, or the tables are missing (a schema problem,
not a data problem). Permanent (the data itself is refused): integrity and data
errors, and values the driver cannot bind. Anything unrecognised from the database
is treated as transient, because dropping good records is worse than retrying.
"""

from __future__ import annotations

import sqlalchemy as sa

from ..errors import StoreUnavailableError
from ..sink import PermanentStoreError, TransientStoreError

__all__ = ["SchemaTooOldError", "classify_write_error", "one_line_reason"]

# SQLSTATE classes that mean "try again": connection exception, transaction
# rollback (serialization failure, deadlock), insufficient resources, operator
# intervention (admin shutdown), system error.
_TRANSIENT_SQLSTATE_CLASSES = ("08", "40", "53", "57", "58")
# undefined_table, undefined_column, lock_not_available, object_in_use
_TRANSIENT_SQLSTATES = {"42P01", "42703", "55P03", "55006"}
# data exception, integrity violation, program limit exceeded (a value too large for
# an index, too many parameters), syntax error or access rule violation: the same data
# fails the same way, and splitting the batch isolates it (the transient codes above
# are checked first).
_DATA_STATE_CLASSES = ("22", "23", "42", "54")
# Python-side failures while binding a value: the same data fails the same way.
_DATA_EXCEPTIONS = (ValueError, TypeError, OverflowError, ArithmeticError, UnicodeError)


class SchemaTooOldError(StoreUnavailableError):
    """The database has no ragtrail schema, or an older one, and was not upgraded."""


def one_line_reason(exc: BaseException) -> str:
    """The driver's own reason for a failure, as one short line."""
    orig = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(orig).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(orig).__name__


def _transient_state(state: str) -> bool:
    return state in _TRANSIENT_SQLSTATES or state.startswith(_TRANSIENT_SQLSTATE_CLASSES)


def _sqlstate(exc: sa.exc.DBAPIError) -> str | None:
    code = getattr(exc.orig, "sqlstate", None)
    return code if isinstance(code, str) else None


def is_transient(exc: BaseException) -> bool:
    """True when ``exc`` says the store may accept the same write later."""
    if isinstance(exc, (sa.exc.DisconnectionError, sa.exc.TimeoutError)):
        return True
    if not isinstance(exc, sa.exc.DBAPIError):
        raw_state = getattr(exc, "sqlstate", None)
        if isinstance(raw_state, str):  # the driver's own error (PostgreSQL's COPY path)
            return _transient_state(raw_state) or not raw_state.startswith(_DATA_STATE_CLASSES)
        return not isinstance(exc, (*_DATA_EXCEPTIONS, sa.exc.StatementError))
    if exc.connection_invalidated:
        return True
    state = _sqlstate(exc)
    if state is not None and _transient_state(state):
        return True
    if state is not None and state.startswith(_DATA_STATE_CLASSES):
        return False  # whatever the driver's exception class (54000 is "operational")
    if isinstance(exc, (sa.exc.IntegrityError, sa.exc.DataError)):
        return False
    # ProgrammingError, NotSupportedError: the statement itself is refused. (A missing
    # table is OperationalError on SQLite and 42P01 on PostgreSQL, both handled above.)
    # OperationalError, InternalError, InterfaceError and unknown ones: retry.
    return not isinstance(exc, (sa.exc.ProgrammingError, sa.exc.NotSupportedError))


def classify_write_error(exc: BaseException) -> TransientStoreError | PermanentStoreError:
    """The sink error to raise (``from exc``) for a failed write."""
    reason = f"{type(exc).__name__}: {one_line_reason(exc)}"
    if is_transient(exc):
        return TransientStoreError(reason)
    return PermanentStoreError(reason)
