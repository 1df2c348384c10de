"""The fast path of payload conversion: encode natively, check the text, decode.

The walk of :class:`~ragtrail.capture._safe_json.SafeJson` visits every value in
Python, bounding, converting and redacting as it goes. Most payloads need none of
that: they are small and plain (dicts, lists, strings, numbers, framework objects with
a registered converter) and hold no secret. For those, encoding the payload with the
standard library's C encoder (framework objects through their converters, as its
``default`` hook) and decoding the text again gives the values the walk would have
produced, as a fresh snapshot, at a fraction of the cost.

Whatever the walk would have treated specially sends the payload to the walk instead:

- the encoder raises on values it does not know (bytes, sets, dates, enums that are not
  ``int`` or ``str``, secrets, unregistered objects), on cycles and on non-finite floats;
- the text is checked for a string over the string limit, a payload over the remaining
  budget, a container with too many items (more commas than items allowed) or too deep
  (a framework object adds a level to the walk, so half the depth limit), an integer
  of 19 digits or more (the walk turns those beyond 64 bits into strings), a mapping key
  the walk spells differently (``True``, ``None``) or that holds an escape, and a
  secret-looking key (all keys in one search).

Redaction runs over the text: one scan of all the payload's strings for anything a rule
needs decides whether any string may change; if so, only the strings the scan flags are
redacted, each by the same ``Redactor.redact`` call the walk makes, and spliced back
into the text, escaped. Keys are not redacted (the walk does not redact them either).

Why the standard library's encoder and not orjson or pydantic-core's ``to_json``:
orjson writes NaN and infinities as ``null`` (the walk keeps them as strings), with no
option to refuse them; pydantic-core encodes bytes, sets, dataclasses, pydantic models
and secret types itself, differently from the walk, with no hook to refuse them. The
standard encoder knows only plain types, and ``allow_nan=False`` makes it raise.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..redaction import Redactor, any_secret_key
from .converters import converter_for, native_subclass_registered

__all__ = ["fast_candidate", "fast_convert"]

#: A JSON string literal (group 1: its escaped content) and, for a mapping key, the
#: colon after it (group 2). Scanning from the start of the text keeps it aligned.
_LITERAL = re.compile(r'"([^"\\]*(?:\\.[^"\\]*)*)"(:?)')
_ESCAPE = re.compile(r"\\(?:u[0-9a-fA-F]{4}|.)")
_BRACKET = re.compile(r"[\[\]{}]")
_LONG_DIGITS = re.compile(r"\d{19}")
#: Keys the encoder made from True, False and None (the walk writes "True", ...), and
#: keys holding an escape (their raw text would have to be recovered first).
_ODD_KEY = re.compile(r"(?m)^(?:true|false|null)$|\\")
_PLAIN = frozenset({dict, list, tuple, str, int, float, bool, type(None)})


class _NotPlain(Exception):
    """A value the walk must convert."""


def _default(value: Any) -> Any:
    convert = converter_for(type(value))
    if convert is None:
        raise _NotPlain
    plain = convert(value)  # an exception: the walk calls it again and keeps the repr
    if type(plain) not in _PLAIN:
        raise _NotPlain
    return plain


_encode = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"),
                           default=_default).encode


def fast_candidate(value: Any) -> bool:
    """True for the values the fast path is tried on: containers and framework objects."""
    kind = type(value)
    return kind is dict or kind is list or kind is tuple or converter_for(kind) is not None


def fast_convert(value: Any, redactor: Redactor | None, max_string_chars: int,
                 max_list_items: int, max_depth: int,
                 budget: int) -> tuple[Any, int, int, bool] | None:
    """(converted, budget used, size, redacted), or None when the walk must convert."""
    if native_subclass_registered():
        return None
    try:
        text = _encode(value)
    except Exception:
        return None
    if _LONG_DIGITS.search(text) is not None:
        return None
    literals = _LITERAL.findall(text)
    keys = "\n".join([content for content, colon in literals if colon])
    if keys and (_ODD_KEY.search(keys) is not None or any_secret_key(keys)):
        return None
    values = [content for content, colon in literals if not colon]
    if values and max(map(len, values)) > max_string_chars:
        return None
    if not _shape_ok(text, max_list_items, (max_depth - 1) // 2):
        return None
    size = len(text)
    if size >= budget:
        return None
    used = sum(map(len, values))
    if "\\" in text:
        used -= sum(len(escape) - 1 for escape in _ESCAPE.findall(text))
    redacted, growth = False, 0
    if redactor is not None and values and redactor.may_change("\x00".join(values)):
        text, delta, growth, redacted = _redact(text, redactor)
        used += delta
    # Every string fits the budget left when the walk reaches it, however redaction
    # changed the strings before it: no truncation, no container cut.
    if size + growth >= budget:
        return None
    return json.loads(text), used, size, redacted


def _shape_ok(text: str, max_items: int, max_nesting: int) -> bool:
    """No container with more than ``max_items`` items or nested deeper than
    ``max_nesting`` (counted on the text with its strings removed, when needed)."""
    structure: str | None = None
    if text.count(",") >= max_items:
        structure = _LITERAL.sub("", text)
        if structure.count(",") >= max_items:
            return False
    if text.count("{") + text.count("[") > max_nesting:
        structure = _LITERAL.sub("", text) if structure is None else structure
        depth = deepest = 0
        for bracket in _BRACKET.findall(structure):
            if bracket == "{" or bracket == "[":
                depth += 1
                deepest = max(deepest, depth)
            else:
                depth -= 1
        return deepest <= max_nesting
    return True


def _redact(text: str, redactor: Redactor) -> tuple[str, int, int, bool]:
    """(text with its flagged strings redacted, size change, growth, whether any changed)."""
    delta = growth = 0
    changed_any = False

    def one(match: re.Match[str]) -> str:
        nonlocal delta, growth, changed_any
        content = match.group(1)
        if match.group(2) or not redactor.may_change(content):
            return match.group(0)
        raw = json.loads(match.group(0)) if "\\" in content else content
        out, changed = redactor.redact(raw)
        if not changed:
            return match.group(0)
        changed_any = True
        delta += len(out) - len(raw)
        growth += max(len(out) - len(raw), 0)
        return json.dumps(out, ensure_ascii=False)

    return _LITERAL.sub(one, text), delta, growth, changed_any
