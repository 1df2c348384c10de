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

__all__ = ["Limits", "SafeJson"]

SECRET_MARK = "[SECRET]"


@dataclasses.dataclass(frozen=True)
class Limits:
    """Size limits for captured payloads."""

    max_string_chars: int = 20_000
    max_list_items: int = 500
    max_depth: int = 24
    max_payload_chars: int = 400_000


class SafeJson:
    """One conversion: tracks truncation, redaction and an approximate size."""

    __slots__ = ("_budget", "_limits", "_redactor", "_seen", "redacted", "size", "truncated")

    def __init__(self, limits: Limits, redactor: Redactor | None) -> None:
        self._limits = limits
        self._redactor = redactor
        self._budget = limits.max_payload_chars
        self._seen: set[int] = set()
        self.truncated = False
        self.redacted = False
        self.size = 0

    def text(self, value: str) -> str:
        """Bound and redact one string."""
        limit = min(self._limits.max_string_chars, max(self._budget, 0))
        if len(value) > limit:
            value = value[:limit] + f"…[truncated {len(value) - limit} chars]"
            self.truncated = True
        if self._redactor is not None:
            value, changed = self._redactor.redact(value)
            self.redacted = self.redacted or changed
        self._budget -= len(value)
        self.size += len(value) + 2
        return value

    def convert(self, value: Any, depth: int = 0) -> Any:
        """Convert ``value`` (see module docstring)."""
        if type(value) is str:  # the common case first, without isinstance chains
            return self.text(value)
        if value is None or isinstance(value, bool):
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
        if self._budget <= 0:
            self.truncated = True
            return "…[truncated: payload limit]"
        if depth >= self._limits.max_depth:
            self.truncated = True
            return "…[truncated: max depth]"
        return self._convert_other(value, depth)

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
        return self.convert(plain, depth + 1)

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
        for i, (k, v) in enumerate(items):
            if i >= limit:
                out["…"] = f"[truncated {count - limit} keys]"
                self.truncated = True
                break
            key = k if isinstance(k, str) else str(self.convert(k, depth + 1))
            if is_secret_key(key) and v not in (None, ""):
                out[key] = SECRET_MARK
                self.redacted = True
                continue
            out[key] = self.text(v) if type(v) is str else self.convert(v, depth + 1)
            self.size += len(key) + 4
        return out

    def _sequence(self, items: Any, depth: int) -> list[Any]:
        out = []
        limit = self._limits.max_list_items
        for i, v in enumerate(items):
            if i >= limit:
                out.append(f"…[truncated {len(items) - limit} items]")
                self.truncated = True
                break
            out.append(self.text(v) if type(v) is str else self.convert(v, depth + 1))
        return out


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
