"""A record in the flat form a store keeps it: one tuple per row, ready to insert.

:func:`flatten` turns a :class:`~ragtrail.schemas.record.CapturedRun` into a
:class:`FlatRecord`: its run, LLM call, documents and document links as tuples in
the column order of the SQL tables (:data:`RUN_FIELDS`, :data:`LLM_FIELDS`,
:data:`DOCUMENT_FIELDS`, :data:`LINK_FIELDS`; the store checks them against its
tables at import). Values are what any backend can take:

* JSON values (inputs, outputs, metadata, the whole LLM metadata, ...) as JSON text,
  serialized once in pydantic's Rust core, ``None`` as ``None`` (SQL NULL);
* timestamps as ISO 8601 UTC text ``YYYY-MM-DDTHH:MM:SS.ffffffZ``; money as decimal
  text, exactly as computed; enums as their values;
* every string, JSON text included, without NUL characters or lone surrogates
  (replaced by U+FFFD): PostgreSQL refuses the first, no driver encodes the second.

The writer's disk spool keeps records in this form as JSON lines
(:meth:`FlatRecord.to_json`), so replaying a spooled record after an outage only
parses its line: it is neither validated into models nor serialized again. A SQL store
only converts timestamps and money to its dialect. :meth:`FlatRecord.to_record` gives
the validated record back for a store that needs one.

Imports only the standard library and pydantic, like the rest of ``ragtrail.schemas``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from pydantic_core import PydanticSerializationError, from_json, to_json

from ._base import to_utc
from .conventions import _StrEnum
from .llm import tool_definition_hash
from .record import CapturedRun, SerializedRecord

__all__ = [
    "DOCUMENT_FIELDS",
    "FLAT_FORM",
    "LINK_FIELDS",
    "LLM_FIELDS",
    "LLM_PROMOTED",
    "RUN_FIELDS",
    "TOOL_FIELDS",
    "TOOL_REF_KEY",
    "AnyRecord",
    "FlatRecord",
    "clean_json",
    "clean_text",
    "expand_tools",
    "flat_rows",
    "flatten",
    "read_record",
    "sqlite_time",
]

#: Version of the flat layout, the first element of a flat record's JSON line. A change
#: of the fields below (the store checks them against its tables at import) must bump
#: it and keep a reader for the previous layout: spools written before an upgrade are
#: replayed after it.
FLAT_FORM = 4
#: Earlier layouts still read (spools written before an upgrade): 1 had no tool rows,
#: 1 and 2 no tenant, 1 to 3 no promoted LLM columns (:data:`LLM_PROMOTED`).
_READ_FORMS = frozenset({1, 2, 3, 4})

RUN_FIELDS = (
    "id", "trace_id", "parent_id", "path", "kind", "name", "framework", "started_at",
    "ended_at", "duration_ms", "status", "error", "inputs", "outputs", "tags", "metadata",
    "truncated", "redacted", "retries", "events", "app_name", "app_version", "user_hash",
    "session_id", "request_type", "environment", "schema_version", "tenant",
)
_TOKENS = ("input", "output", "total", "cache_read", "cache_creation", "reasoning")
_COSTS = ("input", "output", "cache_read", "cache_write", "reasoning", "total")
#: Values of the LLM metadata that quality and drift reports aggregate, kept in columns
#: of their own after ``metadata`` (a copy: the metadata JSON keeps them too), so the
#: reports read no JSON: (column, group of LLMMetadata or None for top level, field).
LLM_PROMOTED = (
    ("model_version", "response_metadata", "model_version"),
    ("request_id", "response_metadata", "request_id"),
    ("finish_reason", "response_metadata", "finish_reason"),
    ("time_to_first_token_ms", "performance_metrics", "time_to_first_token_ms"),
    ("streamed", None, "streamed"),
    ("temperature", "request_parameters", "temperature"),
    ("max_tokens", "request_parameters", "max_tokens"),
)
LLM_FIELDS = (
    "run_id", "trace_id", "provider", "provider_model", "started_at",
    *(f"{name}_tokens" for name in _TOKENS), *(f"{name}_cost" for name in _COSTS),
    "currency", "price_status", "prompt_template_hash", "metadata",
    *(column for column, _, _ in LLM_PROMOTED),
)
DOCUMENT_FIELDS = ("content_hash", "document_id", "content", "metadata")
LINK_FIELDS = ("run_id", "content_hash", "stage", "trace_id", "document_id", "rank", "score",
               "input_rank")
#: A tool definition offered to a model, stored once per distinct definition; the LLM
#: call's JSON keeps ``{"name", "definition_hash"}`` references in its ``tools``.
TOOL_FIELDS = ("definition_hash", "name", "definition")
#: Key of a tool reference in a stored LLM call's ``tools``.
TOOL_REF_KEY = "definition_hash"

#: Positions of the values a store converts to its dialect.
RUN_TIMES = (RUN_FIELDS.index("started_at"), RUN_FIELDS.index("ended_at"))
LLM_TIME = LLM_FIELDS.index("started_at")
LLM_MONEY = tuple(LLM_FIELDS.index(f"{name}_cost") for name in _COSTS)
LLM_META = LLM_FIELDS.index("metadata")
_RUN_JSON = frozenset(("error", "inputs", "outputs", "tags", "metadata", "events",
                       "environment"))
_RUN_JSON_AT = tuple(i for i, name in enumerate(RUN_FIELDS) if name in _RUN_JSON)

_REPLACEMENT = "\ufffd"

#: A row: a tuple when flattened here, a list when read back from JSON.
Row = Sequence[Any]


class FlatRecord:
    """A record as rows: ``run``, ``llm`` (or None), ``documents``, ``links`` and
    ``tools`` (the distinct tool definitions the LLM call was offered)."""

    __slots__ = ("documents", "links", "llm", "run", "tools")

    def __init__(self, run: Row, llm: Row | None, documents: Sequence[Row],
                 links: Sequence[Row], tools: Sequence[Row] = ()) -> None:
        self.run = run
        self.llm = llm
        self.documents = documents
        self.links = links
        self.tools = tools

    @property
    def id(self) -> str:
        """The run id: the record's idempotency key."""
        return str(self.run[0])

    def to_json(self) -> bytes:
        """The record's JSON line body: ``[FLAT_FORM, run, llm, documents, links, tools]``."""
        return to_json([FLAT_FORM, self.run, self.llm, self.documents, self.links,
                        list(self.tools)])

    @classmethod
    def from_data(cls, data: Any) -> FlatRecord:
        """Read :meth:`to_json`'s data back (parsed JSON); raises ValueError if it is not."""
        if not (isinstance(data, list) and data and data[0] in _READ_FORMS
                and len(data) == (5 if data[0] == 1 else 6)):
            raise ValueError("not a flat record of this version")
        run, llm, documents, links = data[1:5]
        tools = data[5] if len(data) == 6 else []
        if data[0] < 3 and isinstance(run, list) and len(run) == len(RUN_FIELDS) - 1:
            run = [*run, None]  # forms 1 and 2 had no tenant
        if not (isinstance(run, list) and len(run) == len(RUN_FIELDS)
                and isinstance(run[0], str)):
            raise ValueError("a flat record's run row is malformed")
        if (data[0] < 4 and isinstance(llm, list) and len(llm) == LLM_META + 1
                and isinstance(llm[LLM_META], str)):  # forms 1 to 3: no promoted columns
            llm = [*llm, *_promoted_json(from_json(llm[LLM_META]))]
        if llm is not None and not (isinstance(llm, list) and len(llm) == len(LLM_FIELDS)):
            raise ValueError("a flat record's LLM row is malformed")
        if not (_rows_of(documents, len(DOCUMENT_FIELDS)) and _rows_of(links, len(LINK_FIELDS))):
            raise ValueError("a flat record's document rows are malformed")
        if not _rows_of(tools, len(TOOL_FIELDS)):
            raise ValueError("a flat record's tool rows are malformed")
        # The parsed lists are kept as rows: a replayed batch allocates no copies (a
        # batch's objects outlive young garbage collections, so each one costs twice).
        return cls(run, llm, documents, links, tools)

    def to_record(self) -> CapturedRun:
        """The validated CapturedRun (raises pydantic's ValidationError, a ValueError)."""
        return CapturedRun.model_validate(self.plain())

    def plain(self) -> dict[str, Any]:
        """The record's JSON data in :class:`CapturedRun`'s layout (not validated)."""
        run = dict(zip(RUN_FIELDS, self.run, strict=True))
        for name in _RUN_JSON:
            run[name] = _value_of(run[name])
        if run["tags"] is None:  # a run always has these lists
            run["tags"] = []
        if run["events"] is None:
            run["events"] = []
        if run["metadata"] is None:
            run["metadata"] = {}
        llm = None if self.llm is None else _value_of(self.llm[LLM_META])
        if llm is not None and self.tools:
            llm["tools"] = expand_tools(llm.get("tools"), {
                row[0]: _value_of(row[2]) for row in self.tools})
        return {
            "schema_version": run["schema_version"],
            "run": run,
            "llm": llm,
            "documents": [{"content_hash": row[0], "document_id": row[1], "content": row[2],
                           "metadata": _value_of(row[3]) or {}} for row in self.documents],
            "links": [dict(zip(LINK_FIELDS, row, strict=True)) for row in self.links],
        }


#: What a store's ``write_batch`` may receive from the writer.
AnyRecord = CapturedRun | FlatRecord | SerializedRecord


def read_record(text: str | bytes) -> AnyRecord:
    """A record's JSON as written to the writer's spool: flat (:meth:`FlatRecord.to_json`)
    or plain (:meth:`CapturedRun.model_dump_json`). Raises ValueError when it is neither.
    """
    if text[:1] in (b"[", "["):
        return FlatRecord.from_data(from_json(text))
    return SerializedRecord.parse(text, loads=from_json)


def flatten(record: CapturedRun) -> FlatRecord:
    """``record`` as rows (see the module's description).

    Raises ValueError (pydantic's ``PydanticSerializationError`` included) when a
    JSON value cannot be serialized at all.
    """
    return flat_rows(record, _iso)


def sqlite_time(value: datetime | None) -> str | None:
    """A timestamp as SQLite's naive UTC text ``YYYY-MM-DD HH:MM:SS.ffffff`` (what a
    SQLite store makes of :func:`flatten`'s ISO text)."""
    if value is None:
        return None
    utc = value if value.tzinfo is timezone.utc else to_utc(value)
    assert utc is not None
    return _SQLITE_TIME % (utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second,
                           utc.microsecond)


# isoformat()'s layout, written without it: it formats the offset too, through printf
# (three times the instructions of the whole timestamp here).
_SQLITE_TIME = "%04d-%02d-%02d %02d:%02d:%02d.%06d"
_ISO_TIME = "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ"


def flat_rows(record: CapturedRun, time: Callable[[datetime | None], str | None]
              ) -> FlatRecord:
    """:func:`flatten` with timestamps written by ``time`` (:func:`sqlite_time` gives a
    SQLite store its rows in one pass).

    Every value is read once; the texts of a row are checked together for NUL and lone
    surrogates (one join, ASCII in the common case), and only a row that has some goes
    through the per-value cleaning.
    """
    run = record.run
    texts = (run.id, run.trace_id, run.parent_id, run.path, run.name, run.app_name,
             run.app_version, run.user_hash, run.session_id, run.request_type,
             run.schema_version, run.tenant)
    if not _plain_texts(texts):
        texts = tuple([_text(value) for value in texts])
    (run_id, trace_id, parent_id, path, name, app_name, app_version, user_hash, session_id,
     request_type, schema_version, tenant) = texts
    started = time(run.started_at)
    run_row = (
        run_id, trace_id, parent_id, path, _enum(run.kind), name, _enum(run.framework),
        started, time(run.ended_at), _float(run.duration_ms), _enum(run.status),
        _json(run.error), _json(run.inputs), _json(run.outputs), _json(run.tags),
        _json(run.metadata), run.truncated, run.redacted, run.retries, _json(run.events),
        app_name, app_version, user_hash, session_id, request_type, _json(run.environment),
        schema_version, tenant,
    )
    llm = record.llm
    llm_row = None
    tool_rows: list[Row] = []
    if llm is not None:
        llm_row, tool_rows = _llm_row(llm, run_id, trace_id, started)
    documents = [(_text(doc.content_hash), _text(doc.document_id), _text(doc.content),
                  _json(doc.metadata) if doc.metadata is not None else "{}")
                 for doc in record.documents]
    links = _link_rows(record.links)
    return FlatRecord(run_row, llm_row, documents, links, tool_rows)


def _link_rows(links: Sequence[Any]) -> list[Row]:
    if not links:
        return []
    rows = [(link.run_id, link.content_hash, _enum(link.stage), link.trace_id,
             link.document_id, link.rank, _float(link.score), link.input_rank)
            for link in links]
    if _plain_texts([text for row in rows for text in (row[0], row[1], row[3], row[4])]):
        return rows  # type: ignore[return-value]
    return [(_text(run_id), _text(digest), stage, _text(trace_id), _text(document_id), rank,
             score, input_rank)
            for run_id, digest, stage, trace_id, document_id, rank, score, input_rank in rows]


def _llm_row(llm: Any, run_id: Any, trace_id: Any, started: Any) -> tuple[Row, list[Row]]:
    usage = llm.token_usage
    cost = llm.cost_metrics
    tokens: tuple[Any, ...] = (None,) * len(_TOKENS)
    if usage is not None:
        total = usage.total_tokens
        if total is None and usage.input_tokens is not None and (
                usage.output_tokens is not None):
            total = usage.input_tokens + usage.output_tokens
        tokens = (usage.input_tokens, usage.output_tokens, total, usage.cache_read_tokens,
                  usage.cache_creation_tokens, usage.reasoning_tokens)
    money: tuple[Any, ...] = (None,) * len(_COSTS)
    currency = price_status = None
    if cost is not None:
        money = tuple(_money(getattr(cost, f"{name}_cost")) for name in _COSTS)
        currency = _text(cost.currency or None)
        price_status = _enum(cost.price_status)
    tool_rows, refs = _tool_rows(llm.tools)
    row = (
        run_id, trace_id, _text(llm.provider or None), _text(_model_name(llm)), started,
        *tokens, *money, currency, price_status, _text(llm.prompt_template_hash or None),
        _json(llm if refs is None else llm.model_copy(update={"tools": refs})),
        *(_scalar(getattr(llm if group is None else getattr(llm, group), name, None))
          for _, group, name in LLM_PROMOTED),
    )
    return row, tool_rows


def _plain_texts(values: Sequence[Any]) -> bool:
    """True when the values are texts (or None / empty) that need no cleaning: no NUL,
    all ASCII. False also when one is not a text (the caller then cleans value by value,
    as :func:`_text` does)."""
    try:
        joined = "".join(filter(None, values))
    except TypeError:  # not only texts
        return False
    return "\x00" not in joined and joined.isascii()


def _scalar(value: Any) -> Any:
    return _float(value) if type(value) is float else _text(value)


def _promoted_json(meta: Any) -> list[Any]:
    """:data:`LLM_PROMOTED`'s values read from a call's metadata JSON (parsed)."""
    out: list[Any] = []
    for _, group, name in LLM_PROMOTED:
        source = meta if group is None else (meta or {}).get(group)
        out.append(source.get(name) if isinstance(source, Mapping) else None)
    return out


def _tool_rows(tools: Any) -> tuple[list[Row], list[dict[str, Any]] | None]:
    """Rows of the distinct tool definitions and the references replacing them."""
    if not tools:
        return [], None
    rows: dict[str, Row] = {}
    refs: list[dict[str, Any]] = []
    for definition in tools:
        if not isinstance(definition, Mapping) or not isinstance(definition.get("name"), str):
            return [], None  # not canonical definitions: kept inline as they are
        digest = tool_definition_hash(definition)
        rows.setdefault(digest, (digest, _text(definition["name"]), _json(definition)))
        refs.append({"name": definition["name"], TOOL_REF_KEY: digest})
    return list(rows.values()), refs


def expand_tools(tools: Any, definitions: Mapping[str, Any]) -> Any:
    """A stored call's ``tools`` with each reference replaced by its definition (a
    reference whose definition is not found stays as it is)."""
    if not isinstance(tools, list):
        return tools
    return [definitions.get(str(t.get(TOOL_REF_KEY)), t) if isinstance(t, Mapping) else t
            for t in tools]


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


def _json(value: Any) -> str | None:
    """JSON text of a value (a model included), clean; None stays None (SQL NULL).

    Serialized in pydantic's Rust core; the Python walk over every string only runs
    for the rare value holding a NUL or a lone surrogate.
    """
    if value is None:
        return None
    if type(value) in _EMPTY and not value:
        return _EMPTY[type(value)]  # what to_json makes of it, without the call
    try:
        text = to_json(value, inf_nan_mode="null").decode()
    except PydanticSerializationError:  # a lone surrogate (anything else fails again)
        return _json_cleaned(value)
    if "\\u0000" in text:
        return _json_cleaned(value)
    return text


_EMPTY: dict[type, str] = {list: "[]", dict: "{}"}


def _json_cleaned(value: Any) -> str:
    return to_json(clean_json(_plain(value)), inf_nan_mode="null").decode()


def _plain(value: Any) -> Any:
    """Python data -> JSON-native data, strings untouched (surrogates survive)."""
    if isinstance(value, str) or value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, Mapping):
        return {_key(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(item) for item in value]
    if hasattr(value, "model_dump"):
        return _plain(value.model_dump(mode="python"))
    return from_json(to_json(value, inf_nan_mode="null"))  # datetime, Decimal, ...


def _key(key: Any) -> str:
    return key if isinstance(key, str) else str(getattr(key, "value", key))


def _text(value: Any) -> Any:
    return clean_text(value) if type(value) is str else value


def _enum(value: Any) -> Any:
    try:
        return _ENUM_TEXT[value]  # a member of the schema's enums (or its value)
    except (KeyError, TypeError):
        return _text(getattr(value, "value", value))


#: The schema's enum members (equal to their values) -> their values, read once.
_ENUM_TEXT: dict[Any, str] = {
    member: member.value for kind in _StrEnum.__subclasses__() for member in kind}


def _float(value: Any) -> Any:
    if type(value) is float and not math.isfinite(value):
        return None
    return value


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    utc = value if value.tzinfo is timezone.utc else to_utc(value)
    assert utc is not None
    return _ISO_TIME % (utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second,
                        utc.microsecond)


def _money(value: Any) -> str | None:
    return None if value is None else str(value)


def _model_name(llm: Any) -> str | None:
    if llm.provider_model:
        return llm.provider_model  # type: ignore[no-any-return]
    params = llm.request_parameters
    if params is not None and params.model:
        return params.model  # type: ignore[no-any-return]
    response = llm.response_metadata
    return response.model_version if response is not None else None


def _value_of(text: Any) -> Any:
    if text is None:
        return None
    if not isinstance(text, str):
        raise ValueError(f"a flat record's JSON value is not JSON text: {type(text).__name__}")
    return from_json(text)


def _rows_of(rows: Any, width: int) -> bool:
    return isinstance(rows, list) and all(isinstance(row, list) and len(row) == width
                                          for row in rows)
