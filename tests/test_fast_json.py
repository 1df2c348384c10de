"""The fast path of payload conversion stores exactly what the walk stores.

``SafeJson.convert`` encodes a payload natively and checks the text (see
``ragtrail.capture._fast_json``); when it cannot tell that the walk would give the same
result, the walk converts. Here arbitrary JSON-like payloads (secrets under keys and in
text, long strings, containers over the limits, odd floats and integers, bytes, sets,
dates, enums, LangChain documents and messages) are converted both ways, under tight
and default limits, with and without redaction: the values, the truncation and
redaction flags and the budget left must be the same.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.documents import Document
from langchain_core.messages import AIMessage, HumanMessage

import ragtrail_langchain  # noqa: F401  (registers the LangChain converters)
from ragtrail.capture import _fast_json
from ragtrail.capture._safe_json import ConvertedCache, Limits, SafeJson
from ragtrail.redaction import RedactionConfig, Redactor


class Color(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


class Tag(str, enum.Enum):
    GOLD = "gold"


TEXTS = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["jane.doe@example.com", "call +1 415 555 0100", "sk-" + "a" * 24,
                     "Bearer abcdefghijklmnop", "card 4111 1111 1111 1111", "page 3",
                     "quote \" and \\ backslash", "line\nbreak\ttab\x00nul", "naïve ☕ 😀",
                     "AKIAABCDEFGHIJKLMNOP", "x" * 300, "true", "null"]),
)
KEYS = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["api_key", "password", "openai_api_key", "Authorization", "metadata",
                     "true", "false", "null", "True", "key\\", "page_content", "id"]),
)
ODD_KEYS = st.one_of(st.integers(-5, 5), st.booleans(), st.none(), st.floats(allow_nan=True),
                     st.sampled_from([Level.HIGH, Tag.GOLD, 2**70]))
SCALARS = st.one_of(
    TEXTS, st.none(), st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 10**18, 2**64]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([-0.0, 1e300, 5e-324, 0.000123456789012345678]),
)
ODD_VALUES = st.one_of(
    st.binary(max_size=8), st.sets(st.integers(0, 3), max_size=3),
    st.just(dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.timezone.utc)),
    st.sampled_from([Color.RED, Level.HIGH, Tag.GOLD]),
)


def _framework(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    documents = st.builds(
        lambda text, meta, doc_id: Document(page_content=text, metadata=meta, id=doc_id),
        TEXTS, st.dictionaries(KEYS, children, max_size=3), st.one_of(st.none(), TEXTS))
    messages = st.one_of(st.builds(HumanMessage, content=TEXTS),
                         st.builds(AIMessage, content=TEXTS))
    return st.one_of(documents, messages)


PAYLOADS = st.recursive(
    st.one_of(SCALARS, ODD_VALUES),
    lambda children: st.one_of(
        st.lists(children, max_size=6),
        st.lists(children, max_size=6).map(tuple),
        st.dictionaries(KEYS, children, max_size=6),
        st.dictionaries(ODD_KEYS, children, max_size=3),
        _framework(children),
    ),
    max_leaves=40,
)
CONTAINERS = st.one_of(st.lists(PAYLOADS, max_size=6), st.dictionaries(KEYS, PAYLOADS, max_size=6),
                       _framework(PAYLOADS))
LIMITS = st.one_of(
    st.just(Limits()),
    st.builds(Limits, max_string_chars=st.integers(1, 400), max_list_items=st.integers(0, 8),
              max_depth=st.integers(0, 9), max_payload_chars=st.integers(0, 3000)),
)
REDACTORS = st.sampled_from([
    "default", "none", "disabled", "user_rule",
])


def _redactor(name: str) -> Redactor | None:
    if name == "none":
        return None
    if name == "disabled":
        return Redactor(RedactionConfig(enabled=False))
    if name == "user_rule":
        return Redactor(RedactionConfig(rules=[r"page \d+", (r"naïve", "NAIVE")]))
    return Redactor()


def _dumped(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=repr)


def _both(values: list[Any], limits: Limits, redactor_name: str,
          cached: bool) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """(fast-path conversion, walk-only conversion) of ``values`` into one SafeJson each."""
    out = []
    for walk_only in (False, True):
        redactor = _redactor(redactor_name)
        cache = ConvertedCache() if cached and (redactor is None or redactor.pure) else None
        conv = SafeJson(limits, redactor, cache)
        converted = [conv._convert(v, 0) if walk_only else conv.convert(v) for v in values]
        out.append((_dumped(converted), conv.truncated, conv.redacted, conv._budget))
    return out[0], out[1]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.lists(CONTAINERS, min_size=1, max_size=3), limits=LIMITS,
       redactor=REDACTORS, cached=st.booleans())
def test_the_fast_path_stores_what_the_walk_stores(values: list[Any], limits: Limits,
                                                  redactor: str, cached: bool) -> None:
    fast, walk = _both(values, limits, redactor, cached)
    assert fast == walk


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(depth=st.integers(1, 40), leaf=TEXTS, limits=LIMITS, wrap=st.sampled_from(
    ["dict", "list", "document"]))
def test_deep_payloads_are_cut_where_the_walk_cuts_them(depth: int, leaf: str, limits: Limits,
                                                        wrap: str) -> None:
    value: Any = leaf
    for level in range(depth):
        if wrap == "dict":
            value = {f"k{level}": value}
        elif wrap == "list":
            value = [value]
        else:
            value = Document(page_content="p", metadata={"inner": value})
    fast, walk = _both([value], limits, "default", cached=False)
    assert fast == walk


DEFAULT_LIMITS = Limits()


def _fast(value: Any, redactor: Redactor | None = None, limits: Limits = DEFAULT_LIMITS) -> Any:
    return _fast_json.fast_convert(value, redactor, limits.max_string_chars,
                                   limits.max_list_items, limits.max_depth,
                                   limits.max_payload_chars)


def test_plain_payloads_take_the_fast_path_and_special_ones_the_walk() -> None:
    redactor = Redactor()
    documents = [Document(page_content="WAL keeps readers going", metadata={"source": "a.md"}),
                 Document(page_content="Mail jane.doe@example.com", metadata={"page": 3})]
    plain = {"question": "what is wal", "context": documents,
             "messages": [HumanMessage(content="hi")], "score": 0.5, "n": 3, "ok": None}
    converted, used, _size, redacted = _fast(plain, redactor)
    assert converted["context"][0] == {"page_content": "WAL keeps readers going",
                                       "metadata": {"source": "a.md"}}
    # Redacted on the text, string by string, as the walk does.
    assert converted["context"][1]["page_content"] == "Mail [EMAIL]" and redacted
    assert converted["messages"] == [{"role": "user", "content": "hi"}]
    assert used == sum(len(s) for s in ("what is wal", "WAL keeps readers going", "a.md",
                                        "Mail [EMAIL]", "user", "hi"))
    for special in ({"api_key": "x"}, {"b": b"raw"}, {"f": math.nan}, {"n": 2**64},
                    {True: 1}, {"s": "x" * 20_001}, {"l": list(range(501))},
                    {"d": dt.date(2024, 1, 1)}, {"e": Color.RED}):
        assert _fast(special, redactor) is None, special
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    assert _fast(cyclic, redactor) is None


def test_a_converter_that_fails_leaves_the_payload_to_the_walk() -> None:
    from ragtrail.capture import register_converter

    class Odd:
        pass

    def broken(value: Any) -> Any:
        raise RuntimeError("converter bug")

    unregister = register_converter(Odd, broken)
    try:
        assert _fast({"x": Odd()}) is None
        converted = SafeJson(Limits(), Redactor()).convert({"x": Odd()})
        assert converted["x"].startswith("<Odd: ")
    finally:
        unregister()


def test_a_registered_subclass_of_a_json_type_turns_the_fast_path_off() -> None:
    from ragtrail.capture import register_converter

    class Wrapped(dict):  # type: ignore[type-arg]
        pass

    unregister = register_converter(Wrapped, lambda value: {"wrapped": dict(value)})
    try:
        assert _fast({"x": 1}) is None
        assert SafeJson(Limits(), None).convert([Wrapped(a=1)]) == [{"wrapped": {"a": 1}}]
    finally:
        unregister()
    assert _fast({"x": 1}) is not None


@pytest.mark.parametrize("name", ["default", "user_rule"])
def test_redaction_over_the_text_matches_redaction_string_by_string(name: str) -> None:
    value = {"a": ["page 12 of jane.doe@example.com", "naïve"], "b": {"c": "sk-" + "b" * 30}}
    fast, walk = _both([value], Limits(), name, cached=False)
    assert fast == walk and fast[2] is True
