"""Records -> driver-ready row tuples, made safe for both backends.

A record arrives either as a :class:`CapturedRun` (from the writer's memory queue) or
as a :class:`SerializedRecord` (its JSON, parsed with ``json.loads``, read back from
the disk spool). Both become the same JSON-native dict (pydantic's JSON dump) and go
through one encoder, so a replayed record is stored exactly like a fresh one without
being validated into models again.

PostgreSQL refuses NUL (``\\x00``) in text and JSONB, and no driver can encode a
lone surrogate; such a value would make its whole batch a poison record. Every
string (JSON keys included) is therefore stored with those characters replaced by
U+FFFD, on both backends so they return the same data. Content hashes are computed
by the Recorder before storage, so documents stay joinable by their original hash.

Column conventions (see ``_types``): timestamps are naive UTC text
``YYYY-MM-DD HH:MM:SS.ffffff`` on SQLite and ISO 8601 text (parsed by the server) on
PostgreSQL; money is an integer of 1e-10 units on SQLite and an exact decimal on
PostgreSQL; JSON columns are JSON text, ``None`` as SQL NULL.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic_core import PydanticSerializationError, to_json

from ..schemas.record import AnyRecord, SerializedRecord
from . import _tables
from ._types import MONEY_PLACES, quantize_money

__all__ = [
    "TABLE_ORDER",
    "EncodeError",
    "Encoded",
    "clean_json",
    "clean_text",
    "encode_batch",
    "json_serializer",
]

_REPLACEMENT = "\ufffd"

#: Insert order: parents before children.
TABLE_ORDER = ("runs", "llm_calls", "documents", "document_links")

_RUN_COLUMNS = tuple(c.name for c in _tables.runs.columns)
_LLM_COLUMNS = tuple(c.name for c in _tables.llm_calls.columns)
_DOC_COLUMNS = tuple(c.name for c in _tables.documents.columns)
_LINK_COLUMNS = tuple(c.name for c in _tables.document_links.columns)
# _Encoder.add writes rows in these column orders; a table change must update it.
assert _RUN_COLUMNS == (
    "id", "trace_id", "parent_id", "path", "kind", "name", "framework", "started_at",
    "ended_at", "duration_ms", "status", "error", "inputs", "outputs", "tags", "metadata",
    "truncated", "redacted", "retries", "events", "app_name", "app_version", "user_hash",
    "session_id", "request_type", "environment", "schema_version",
), _RUN_COLUMNS
assert (
    "run_id", "trace_id", "provider", "provider_model", "started_at",
    *(f"{name}_tokens" for name in ("input", "output", "total", "cache_read", "cache_creation",
                                    "reasoning")),
    *(f"{name}_cost" for name in ("input", "output", "cache_read", "cache_write", "reasoning",
                                  "total")),
    "currency", "price_status", "prompt_template_hash", "metadata",
) == _LLM_COLUMNS, _LLM_COLUMNS
assert _DOC_COLUMNS == ("content_hash", "document_id", "content", "metadata"), _DOC_COLUMNS
assert _LINK_COLUMNS == ("run_id", "content_hash", "stage", "trace_id", "document_id", "rank",
                         "score", "input_rank"), _LINK_COLUMNS
_TOKENS = ("input", "output", "cache_read", "cache_creation", "reasoning")
_COSTS = ("input", "output", "cache_read", "cache_write", "reasoning", "total")

COLUMNS: dict[str, tuple[str, ...]] = {
    "runs": _RUN_COLUMNS,
    "llm_calls": _LLM_COLUMNS,
    "documents": _DOC_COLUMNS,
    "document_links": _LINK_COLUMNS,
}
#: Primary-key columns of each table, in key order.
KEYS: dict[str, tuple[str, ...]] = {
    name: tuple(c.name for c in _tables.metadata.tables[name].primary_key.columns)
    for name in TABLE_ORDER
}


class EncodeError(ValueError):
    """A record whose data no backend can store (the message says which value)."""


def json_serializer(value: Any) -> str:
    """The store engines' JSON serializer for values bound through SQLAlchemy."""
    if value is None:
        return "null"  # SQLAlchemy stores a None JSON value as JSON null
    return json.dumps(value)


def clean_text(text: str) -> str:
    """``text`` with NUL characters and lone surrogates replaced by U+FFFD."""
    if "\x00" in text:
        text = text.replace("\x00", _REPLACEMENT)
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "".join(_REPLACEMENT if "\ud800" <= ch <= "\udfff" else ch for ch in text)
    return text


def clean_json(value: Any) -> Any:
    """A JSON-native value with every string (and key) passed through :func:`clean_text`."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, Mapping):
        return {clean_text(str(key)): clean_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean_json(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None  # as pydantic dumps inf and NaN
    return value


def _json_text(value: Any) -> str | None:
    """JSON text of a JSON-native value, strings cleaned; None stays SQL NULL.

    Serialized in pydantic's Rust core; the Python walk over every string only runs
    for the rare value that holds a NUL, a lone surrogate, NaN or infinity.
    """
    if value is None:
        return None
    try:
        text = to_json(value, inf_nan_mode="null").decode()
    except (UnicodeError, PydanticSerializationError):  # a lone surrogate
        return to_json(clean_json(value), inf_nan_mode="null").decode()
    if "\\u0000" in text:
        return to_json(clean_json(value), inf_nan_mode="null").decode()
    return text


def _text(value: Any) -> Any:
    return clean_text(value) if type(value) is str else value


def _float(value: Any) -> Any:
    if type(value) is float and not math.isfinite(value):
        return None
    return value


def _time_sqlite(value: str | None) -> str | None:
    """pydantic's ISO text (``...Z``) -> SQLite's naive UTC ``YYYY-MM-DD HH:MM:SS.ffffff``."""
    if value is None:
        return None
    if len(value) == 27 and value[19] == "." and value[26] == "Z":
        return f"{value[:10]} {value[11:26]}"
    if len(value) == 20 and value[19] == "Z":
        return f"{value[:10]} {value[11:19]}.000000"
    try:  # another offset or precision (a hand-edited spool line)
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
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
        self.rows: dict[str, dict[tuple[Any, ...], tuple[Any, ...]]] = {
            name: {} for name in TABLE_ORDER
        }

    def tables(self) -> Iterator[tuple[str, list[tuple[Any, ...]]]]:
        """(table, rows sorted by key) in insert order: parents before children.

        Sorting gives concurrent writers one lock order, so they cannot deadlock.
        """
        for name in TABLE_ORDER:
            rows = self.rows[name]
            yield name, [rows[key] for key in sorted(rows)]


class _Encoder:
    def __init__(self, dialect: str) -> None:
        sqlite = dialect == "sqlite"
        self.time = _time_sqlite if sqlite else _time_pg
        self.money = _money_sqlite if sqlite else _money_pg

    def add(self, out: Encoded, data: dict[str, Any]) -> None:
        run = data["run"]
        get = run.get
        time = self.time
        started = time(run["started_at"])
        # In the order of _RUN_COLUMNS (checked at import).
        run_row = (
            _text(run["id"]), _text(run["trace_id"]), _text(get("parent_id")),
            _text(run["path"]), _text(run["kind"]), _text(run["name"]),
            _text(run["framework"]), started, time(get("ended_at")),
            _float(get("duration_ms")), _text(run["status"]), _json_text(get("error")),
            _json_text(get("inputs")), _json_text(get("outputs")), _json_text(get("tags")),
            _json_text(get("metadata")), get("truncated"), get("redacted"), get("retries"),
            _json_text(get("events")), _text(get("app_name")), _text(get("app_version")),
            _text(get("user_hash")), _text(get("session_id")), _text(get("request_type")),
            _json_text(get("environment")), _text(get("schema_version")),
        )
        out.rows["runs"].setdefault((run_row[0],), run_row)
        llm = data.get("llm")
        if llm is not None:
            llm_row = self._llm_row(run_row[0], run_row[1], started, llm)
            out.rows["llm_calls"].setdefault((llm_row[0],), llm_row)
        docs = out.rows["documents"]
        for doc in data.get("documents") or ():
            doc_row = (_text(doc["content_hash"]), _text(doc["document_id"]),
                       _text(doc.get("content")), _json_text(doc.get("metadata") or {}))
            docs.setdefault((doc_row[0],), doc_row)
        links = out.rows["document_links"]
        for link in data.get("links") or ():
            link_row = (_text(link["run_id"]), _text(link["content_hash"]),
                        _text(link["stage"]), _text(link["trace_id"]),
                        _text(link["document_id"]), link["rank"], _float(link.get("score")),
                        link.get("input_rank"))
            links.setdefault(link_row[:3], link_row)

    def _llm_row(self, run_id: Any, trace_id: Any, started: Any,
                 meta: dict[str, Any]) -> tuple[Any, ...]:
        usage = meta.get("token_usage") or {}
        cost = meta.get("cost_metrics") or {}
        total_tokens = usage.get("total_tokens")
        if total_tokens is None and usage.get("input_tokens") is not None and usage.get(
                "output_tokens") is not None:
            total_tokens = usage["input_tokens"] + usage["output_tokens"]
        money = self.money
        return (
            run_id, trace_id, _text(meta.get("provider") or None),
            _text(_model_name(meta)), started,
            *(usage.get(f"{name}_tokens") for name in _TOKENS[:2]), total_tokens,
            *(usage.get(f"{name}_tokens") for name in _TOKENS[2:]),
            *(money(cost.get(f"{name}_cost")) for name in _COSTS),
            _text(cost.get("currency") or None), cost.get("price_status"),
            _text(meta.get("prompt_template_hash") or None), _json_text(meta),
        )


def _model_name(meta: dict[str, Any]) -> str | None:
    if meta.get("provider_model"):
        return meta["provider_model"]  # type: ignore[no-any-return]
    params = meta.get("request_parameters")
    if params and params.get("model"):
        return params["model"]  # type: ignore[no-any-return]
    response = meta.get("response_metadata")
    return response.get("model_version") if response else None


_ENCODERS = {"sqlite": _Encoder("sqlite"), "postgresql": _Encoder("postgresql")}


def record_data(record: AnyRecord) -> dict[str, Any]:
    """A record as JSON-native data, the way its JSON dump reads back."""
    if isinstance(record, SerializedRecord):
        return record.data
    try:
        return record.model_dump(mode="json")
    except UnicodeError:  # a lone surrogate somewhere: clean every string first
        data: dict[str, Any] = json.loads(
            to_json(clean_json(record.model_dump()), inf_nan_mode="null"))
        return data


def encode_batch(records: Sequence[AnyRecord], dialect: str) -> Encoded:
    """The deduplicated rows of ``records`` for ``dialect`` ("sqlite" or "postgresql").

    Raises :class:`EncodeError` when some record holds a value no backend can store.
    """
    encoder = _ENCODERS["sqlite" if dialect == "sqlite" else "postgresql"]
    out = Encoded()
    for record in records:
        try:
            encoder.add(out, record_data(record))
        except EncodeError:
            raise
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise EncodeError(f"record {_record_id(record)} cannot be stored: "
                              f"{type(exc).__name__}: {exc}") from exc
    return out


def _record_id(record: AnyRecord) -> str:
    try:
        return str(record.id)
    except Exception:  # reporting must not fail
        return "?"
