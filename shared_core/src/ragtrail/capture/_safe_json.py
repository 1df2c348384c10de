"""Turn any Python value into bounded, redacted, JSON-safe data. Never raises.

Odd data is captured safely rather than refused: bytes become a size and hash,
cycles and excess depth become markers, NaN becomes a string, unknown objects their
(bounded) repr. Values under secret-looking keys are never kept.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import decimal
import enum
import hashlib
import math
import uuid
from collections.abc import Callable, Mapping
from pathlib import PurePath
from typing import Any

from ..redaction import Redactor, is_secret_key
from .converters import converter_for

__all__ = ["ConvertedCache", "Limits", "SafeJson"]

SECRET_MARK = "[SECRET]"


@dataclasses.dataclass(frozen=True)
class Limits:
    """Size limits for captured payloads."""

    max_string_chars: int = 20_000
    max_list_items: int = 500
    max_depth: int = 24
    max_payload_chars: int = 400_000


class ConvertedCache:
    """Recent conversions of framework objects, reused while an object still converts
    to the same data.

    A LangChain ``Document`` travels through a chain: it is in the retriever's output,
    the next step's input, the reranker's input and output... Its converter runs each
    time (a shallow copy), but when the result equals what was stored last time for the
    same object, the stored conversion is reused instead of walking it again. Equality
    is checked against the stored conversion itself, a snapshot made by the walk, so an
    object changed in between (a reranker adding a score to a document's metadata) is
    converted afresh. Only conversions that redacted and truncated nothing are kept:
    for those the snapshot is the converter's data, value for value.
    """

    __slots__ = ("_chars", "_entries", "_max_chars", "_max_entries")

    def __init__(self, max_entries: int = 512, max_chars: int = 2_000_000) -> None:
        self._entries: dict[int, tuple[Any, int, int, int, dict[str, Any]]] = {}
        self._max_entries = max_entries
        # The entries keep their objects alive: bounded by count and by the text they hold.
        self._max_chars = max_chars
        self._chars = 0

    def get(self, value: Any, plain: dict[str, Any], depth: int,
            budget: int) -> tuple[dict[str, Any], int, int] | None:
        """(conversion, budget used, size) of ``value`` if ``plain`` converts as before."""
        entry = self._entries.get(id(value))
        # Same object (the entry holds it, so its id cannot be reused), no deeper than
        # when converted (no new depth cut) and within the remaining payload budget.
        if entry is None or entry[0] is not value or depth > entry[1] or budget <= entry[2]:
            return None
        try:
            same = plain == entry[4]
        except Exception:  # an odd __eq__ (arrays): convert afresh
            return None
        return (entry[4], entry[2], entry[3]) if same is True else None

    def put(self, value: Any, depth: int, used: int, size: int,
            converted: dict[str, Any]) -> None:
        """Remember the conversion of ``value``."""
        if len(self._entries) >= self._max_entries or self._chars + used > self._max_chars:
            self._entries.clear()  # crude but bounded; a miss only costs a walk
            self._chars = 0
        if used <= self._max_chars:
            self._entries[id(value)] = (value, depth, used, size, converted)
            self._chars += used


class SafeJson:
    """One conversion: tracks truncation, redaction and an approximate size."""

    __slots__ = ("_budget", "_cache", "_limits", "_redactor", "_seen", "redacted", "size",
                 "truncated")

    def __init__(self, limits: Limits, redactor: Redactor | None,
                 cache: ConvertedCache | None = None) -> None:
        self._limits = limits
        self._redactor = redactor
        self._cache = cache
        self._budget = limits.max_payload_chars
        self._seen: set[int] = set()
        self.truncated = False
        self.redacted = False
        self.size = 0

    def text(self, value: str) -> str:
        """Bound and redact one string."""
        size = len(value)
        if size > self._budget or size > self._limits.max_string_chars:
            limit = min(self._limits.max_string_chars, max(self._budget, 0))
            if size > limit:
                value = value[:limit] + f"…[truncated {size - limit} chars]"
                self.truncated = True
        if self._redactor is not None:
            value, changed = self._redactor.redact(value)
            if changed:
                self.redacted = True
            size = len(value)
        self._budget -= size
        self.size += size + 2
        return value

    def convert(self, value: Any, depth: int = 0) -> Any:
        """Convert ``value`` (see module docstring)."""
        kind = type(value)
        if kind is str:  # the common cases first, without isinstance chains
            return self.text(value)
        if kind is dict or kind is list or kind is tuple:
            if self._budget <= 0 or depth >= self._limits.max_depth:
                return self._cut()
            return self._visit(value, depth, self._plain_container)
        if value is None or kind is bool:
            self.size += 4
            return value
        if kind is int:
            self.size += 8
            return value if -(2**63) <= value < 2**63 else str(value)
        if kind is float:
            self.size += 8
            return value if math.isfinite(value) else str(value)
        return self._convert_odd(value, depth)

    def _convert_odd(self, value: Any, depth: int) -> Any:
        """Subclasses of the scalar types, and everything that is not plain data."""
        if isinstance(value, bool):
            self.size += 4
            return value
        if isinstance(value, int) and not isinstance(value, enum.Enum):
            self.size += 8
            return value if -(2**63) <= value < 2**63 else str(value)
        if isinstance(value, float):
            self.size += 8
            return value if math.isfinite(value) else str(value)
        if isinstance(value, str):
            return self.text(value)
        if self._budget <= 0 or depth >= self._limits.max_depth:
            return self._cut()
        return self._convert_other(value, depth)

    def _cut(self) -> str:
        """The marker of a container cut by the payload budget or the depth limit."""
        self.truncated = True
        if self._budget <= 0:
            return "…[truncated: payload limit]"
        return "…[truncated: max depth]"

    def _convert_other(self, value: Any, depth: int) -> Any:
        kind = type(value)
        if kind is dict or kind is list or kind is tuple:  # plain containers, no ABC checks
            return self._visit(value, depth, self._plain_container)
        if converter_for(kind) is not None:  # a framework object an adapter registered
            return self._visit(value, depth, self._registered)
        if isinstance(value, enum.Enum):
            return self.convert(value.value, depth + 1)
        if isinstance(value, (bytes, bytearray, memoryview)):
            raw = bytes(value)
            self.size += 80
            return {"__bytes__": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}
        if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
            return self.text(value.isoformat())
        if isinstance(value, (decimal.Decimal, uuid.UUID, PurePath, complex)):
            return self.text(str(value))
        secret = _secret_value(value)
        if secret is not None:
            self.redacted = True
            return secret
        return self._visit(value, depth, self._container)

    def _visit(self, value: Any, depth: int, convert: Callable[[Any, int], Any]) -> Any:
        """``convert(value, depth)``, or a cycle marker when ``value`` is being converted."""
        key = id(value)
        if key in self._seen:
            self.truncated = True
            return "…[cycle]"
        self._seen.add(key)
        try:
            return convert(value, depth)
        finally:
            self._seen.discard(key)

    def _registered(self, value: Any, depth: int) -> Any:
        convert = converter_for(type(value))
        try:
            plain = convert(value) if convert is not None else None
        except Exception:  # the adapter's converter failed: keep the value's repr
            return self.text(f"<{type(value).__name__}: {_safe_repr(value)}>")
        cache = self._cache
        if cache is None or type(plain) is not dict:
            return self.convert(plain, depth + 1)
        known = cache.get(value, plain, depth, self._budget)
        if known is not None:
            converted, used, size = known
            self._budget -= used
            self.size += size
            return converted
        budget, size, truncated, redacted = self._budget, self.size, self.truncated, self.redacted
        self.truncated = self.redacted = False
        converted = self.convert(plain, depth + 1)
        if not (self.truncated or self.redacted):  # others would never match their data
            cache.put(value, depth, budget - self._budget, self.size - size, converted)
        self.truncated |= truncated
        self.redacted |= redacted
        return converted

    def _plain_container(self, value: Any, depth: int) -> Any:
        if type(value) is dict:
            return self._mapping(value.items(), len(value), depth)
        return self._sequence(value, depth)

    def _container(self, value: Any, depth: int) -> Any:
        if isinstance(value, Mapping):
            return self._mapping(value.items(), len(value), depth)
        if isinstance(value, (list, tuple, set, frozenset)) or _is_array(value):
            items = value.tolist() if _is_array(value) else value
            if isinstance(items, (set, frozenset)):
                items = sorted(items, key=repr)
            return self._sequence(items, depth)
        item = getattr(value, "item", None)
        if callable(item) and type(value).__module__ == "numpy":
            return self.convert(item(), depth + 1)
        dumped = _structured(value)
        if dumped is not None:
            return self._mapping(dumped.items(), len(dumped), depth, type_name=type(value).__name__)
        return self.text(f"<{type(value).__name__}: {_safe_repr(value)}>")

    def _mapping(self, items: Any, count: int, depth: int, type_name: str | None = None) -> Any:
        out: dict[str, Any] = {}
        if type_name is not None:
            out["__type__"] = type_name
        limit = self._limits.max_list_items
        text, convert = self.text, self.convert
        inner = depth + 1
        keys = 0
        for i, (k, v) in enumerate(items):
            if i >= limit:
                out["…"] = f"[truncated {count - limit} keys]"
                self.truncated = True
                break
            key = k if isinstance(k, str) else str(convert(k, inner))
            keys += len(key) + 4
            if is_secret_key(key) and v not in (None, ""):
                out[key] = SECRET_MARK
                self.redacted = True
                continue
            out[key] = text(v) if type(v) is str else convert(v, inner)
        self.size += keys
        return out

    def _sequence(self, items: Any, depth: int) -> list[Any]:
        limit = self._limits.max_list_items
        text, convert = self.text, self.convert
        inner = depth + 1
        if len(items) > limit:
            out = [text(v) if type(v) is str else convert(v, inner) for v in items[:limit]]
            out.append(f"…[truncated {len(items) - limit} items]")
            self.truncated = True
            return out
        return [text(v) if type(v) is str else convert(v, inner) for v in items]


def _is_array(value: Any) -> bool:
    numpy = type(value).__module__ == "numpy"
    return numpy and hasattr(value, "tolist") and hasattr(value, "shape")


def _secret_value(value: Any) -> str | None:
    # pydantic SecretStr/SecretBytes and similar never reveal their content.
    name = type(value).__name__
    if name in {"SecretStr", "SecretBytes", "Secret"}:
        return SECRET_MARK
    return None


def _structured(value: Any) -> dict[str, Any] | None:
    """Fields of a dataclass or pydantic model, shallowly; None for other objects."""
    try:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {f.name: getattr(value, f.name, None) for f in dataclasses.fields(value)}
        fields = getattr(type(value), "model_fields", None)
        if isinstance(fields, dict):
            return {name: getattr(value, name, None) for name in fields}
    except Exception:
        return None
    return None


def _safe_repr(value: Any) -> str:
    try:
        text = repr(value)
    except Exception as exc:
        return f"unrepresentable: {type(exc).__name__}"
    return text if len(text) <= 500 else text[:500] + "…"
