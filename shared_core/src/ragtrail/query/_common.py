"""Helpers shared by the queries: rows to records, text of inputs/outputs, filters."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..conventions import answer_from_messages, messages_in, question_from_messages
from ..errors import ConfigError
from ..schemas import LLMCallRecord, LLMMetadata, Run
from ..store import _tables
from ..store._payloads import run_columns

__all__ = [
    "answer_of",
    "as_text",
    "chunks",
    "excerpt",
    "llm_call_from_row",
    "parse_time",
    "question_of",
    "run_from_row",
    "runs_by_id",
    "time_filters",
]

T = TypeVar("T")

#: Keys whose value is taken as the text of a run's input, in order of preference.
QUESTION_KEYS = ("question", "query", "query_str", "input", "prompt", "text", "content", "message")
#: Keys whose value is taken as the text of a run's output, in order of preference.
ANSWER_KEYS = ("answer", "output", "result", "response", "text", "content", "output_text")
#: Bound on SQL IN lists (SQLite allows 32766 variables per statement).
IN_CHUNK = 500
_RUN_FIELDS = tuple(Run.model_fields)


def as_text(value: Any, keys: Sequence[str]) -> str | None:
    """``value`` as text where it is text: a str, or a dict holding one.

    A dict with a single string value gives that value; otherwise the first of
    ``keys`` present gives its text (nested dicts, like a message's content, count).
    """
    if isinstance(value, str):
        return value
    if isinstance(value, list) and len(value) == 1:
        return as_text(value[0], keys)
    if not isinstance(value, Mapping):
        return None
    strings = [item for item in value.values() if isinstance(item, str)]
    if len(value) == 1 and len(strings) == 1:
        return strings[0]
    for key in keys:
        if key in value:
            text = as_text(value[key], keys)
            if text is not None:
                return text
    return None


def question_of(inputs: Any) -> str | None:
    """The question of a root run: its input as text (see :func:`as_text`: a string, or
    one under a question key such as ``question`` or ``input``), else the last user
    message when its input is a message list or a state holding one (a LangGraph
    ``MessagesState``, an agent's ``{"messages": [...]}``)."""
    text = as_text(inputs, QUESTION_KEYS)
    return text if text is not None else question_from_messages(inputs)


def answer_of(outputs: Any) -> str | None:
    """The answer of a root run: its output as text, else the last assistant message
    that is not a tool call when its output is a message list or a state holding one
    (a run that ended on a tool call has no answer)."""
    text = as_text(outputs, ANSWER_KEYS)
    if text is not None or messages_in(outputs) is None:
        return text
    return answer_from_messages(outputs)


def excerpt(text: str | None, max_chars: int = 200) -> str | None:
    """``text`` on one line, cut to ``max_chars`` with an ellipsis."""
    if text is None:
        return None
    line = " ".join(text.split())
    return line if len(line) <= max_chars else line[: max_chars - 1] + "…"


def parse_time(value: datetime | str | None, name: str) -> datetime | None:
    """A filter bound as an aware UTC datetime (naive = UTC; ISO text accepted)."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError(f"{name} must be an ISO date or datetime, got {value!r}") from None
    if not isinstance(value, datetime):
        raise ConfigError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def time_filters(
    column: sa.ColumnElement[Any], since: datetime | str | None, until: datetime | str | None
) -> list[sa.ColumnElement[bool]]:
    """``since <= column < until`` conditions for the bounds that are given."""
    conditions: list[sa.ColumnElement[bool]] = []
    start = parse_time(since, "since")
    end = parse_time(until, "until")
    if start is not None:
        conditions.append(column >= start)
    if end is not None:
        conditions.append(column < end)
    return conditions


def chunks(items: Iterable[T], size: int = IN_CHUNK) -> Iterator[list[T]]:
    """``items`` in lists of at most ``size``."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def run_from_row(row: sa.Row[Any]) -> Run:
    """A stored ``runs`` row as a :class:`Run`."""
    data = row._mapping
    return Run.model_validate({name: data[name] for name in _RUN_FIELDS})


def llm_call_from_row(row: sa.Row[Any]) -> LLMCallRecord:
    """A stored ``llm_calls`` row as an :class:`LLMCallRecord` (from its full JSON)."""
    data = row._mapping
    return LLMCallRecord(
        run_id=data["run_id"],
        trace_id=data["trace_id"],
        metadata=LLMMetadata.model_validate(data["metadata"]),
    )


def runs_by_id(conn: Connection, run_ids: Iterable[str]) -> dict[str, Run]:
    """The stored runs among ``run_ids``, by id."""
    runs = _tables.runs
    found: dict[str, Run] = {}
    for batch in chunks(sorted(set(run_ids))):
        for row in conn.execute(sa.select(*run_columns(runs)).where(runs.c.id.in_(batch))):
            run = run_from_row(row)
            found[run.id] = run
    return found


def sum_cost(costs: Iterable[Decimal | None]) -> tuple[Decimal | None, int]:
    """(sum of the known costs or None if none, number of unknown ones)."""
    total: Decimal | None = None
    unknown = 0
    for cost in costs:
        if cost is None:
            unknown += 1
        else:
            total = cost if total is None else total + cost
    return total, unknown
