"""No provider key name under ``packages/``: the adapters find raw objects and hand them
to ``ragtrail.providers``, the one place that spells what providers send.

The names are the core's own list (:data:`ragtrail.providers.PROVIDER_KEY_NAMES`); the
adapters' sources are read as text, docstrings and comments included.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ragtrail.providers import (
    CACHE_TTL_KEYS,
    PARAM_SYNONYMS,
    PROVIDER_KEY_NAMES,
    REQUEST_ID_HEADERS,
    USAGE_COUNT_KEYS,
    USAGE_DETAIL_KEYS,
)
from ragtrail.schemas import LLMRequestParameters

ROOT = Path(__file__).resolve().parents[2]
ADAPTER_SOURCES = sorted(ROOT.glob("packages/*/src/**/*.py"))


def _pattern(names: tuple[str, ...]) -> re.Pattern[str]:
    # A name stands alone: not part of a longer identifier ("cache_read" is not found in
    # "cache_read_tokens", ragtrail's own field).
    alternatives = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    return re.compile(rf"(?<![A-Za-z0-9_])(?:{alternatives})(?![A-Za-z0-9_])")


NAMES = _pattern(PROVIDER_KEY_NAMES)


def _found(text: str) -> list[str]:
    return [f"{number}: {line.strip()}" for number, line in enumerate(text.splitlines(), 1)
            if NAMES.search(line)]


def test_the_adapters_are_there_to_read() -> None:
    packages = {path.relative_to(ROOT).parts[1] for path in ADAPTER_SOURCES}
    assert packages == {"ragtrail-langchain", "ragtrail-llamaindex"}


@pytest.mark.parametrize("path", ADAPTER_SOURCES,
                         ids=[str(p.relative_to(ROOT / "packages")) for p in ADAPTER_SOURCES])
def test_no_provider_key_name_in_an_adapter(path: Path) -> None:
    assert _found(path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize(("line", "hit"), [
    ('usage.get("prompt_tokens")', True),
    ("headers['x-request-id']", True),
    ('f"x-ratelimit-remaining-{bucket}"', True),
    ("# Anthropic's cache_creation_input_tokens", True),
    ('details.get("priority_cache_read")', True),
    ('usage["cache_read_tokens"]', False),  # ragtrail's field
    ("max_tokens=256", False),  # ragtrail's parameter
])
def test_the_check_finds_a_name_where_it_stands(line: str, hit: bool) -> None:
    assert bool(_found(line)) is hit


def test_the_list_covers_the_core_tables() -> None:
    ours = set(LLMRequestParameters.model_fields) | {"model_name", "model_id",
                                                      "deployment_name", "stop"}
    synonyms = {name for names in PARAM_SYNONYMS.values() for name in names} - ours
    tables = {*USAGE_COUNT_KEYS, *(key for _, key in USAGE_DETAIL_KEYS), *CACHE_TTL_KEYS,
              *REQUEST_ID_HEADERS, *synonyms}
    assert tables <= set(PROVIDER_KEY_NAMES)
