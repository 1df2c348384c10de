"""ragtrail.pricing: exact Decimal costs per token bucket from the genai-prices snapshot.

Expected values are computed by hand from the prices in the installed genai-prices
snapshot (quoted per million tokens, "MTok", in each test) and written as literals.
Every call passes ``at=`` so the dated prices in the snapshot cannot drift under us.
"""

from __future__ import annotations

import copy
import json
import logging
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import genai_prices
import pytest
from genai_prices import Usage, calc_price, data_snapshot
from genai_prices import types as gp_types
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ragtrail.errors import ConfigError
from ragtrail.pricing import ModelPrice, Pricer, load_price_overrides
from ragtrail.schemas import LLMCostMetrics, LLMTokenUsage, PriceStatus

AT = datetime(2025, 9, 1, 12, 0, tzinfo=timezone.utc)
GENAI = f"genai-prices {genai_prices.__version__}"
COST_FIELDS = ("input_cost", "cache_read_cost", "cache_write_cost", "output_cost", "reasoning_cost")


@pytest.fixture(scope="module")
def pricer() -> Iterator[Pricer]:
    with Pricer() as p:
        yield p


def usage(**kw: int) -> LLMTokenUsage:
    return LLMTokenUsage(**kw)


def costs(m: LLMCostMetrics) -> tuple[Decimal | None, ...]:
    return tuple(getattr(m, name) for name in (*COST_FIELDS, "total_cost"))


def assert_all_costs_none(m: LLMCostMetrics) -> None:
    assert costs(m) == (None,) * 6


def bucket_costs(m: LLMCostMetrics) -> dict[str, object]:
    return {name: getattr(m, name) for name in (*COST_FIELDS, "total_cost", "price_status")}


def expected(
    *,
    input: str,
    output: str,
    total: str,
    cache_read: str = "0",
    cache_write: str = "0",
    reasoning: str | None = None,
) -> dict[str, object]:
    """A priced call's costs, from decimal literals; reasoning None = not priced apart."""
    return {
        "input_cost": Decimal(input),
        "cache_read_cost": Decimal(cache_read),
        "cache_write_cost": Decimal(cache_write),
        "output_cost": Decimal(output),
        "reasoning_cost": None if reasoning is None else Decimal(reasoning),
        "total_cost": Decimal(total),
        "price_status": PriceStatus.PRICED,
    }


# --- OpenAI ---------------------------------------------------------------------


def test_openai_gpt4o_cache_read_is_priced_at_cache_rate_not_twice(pricer: Pricer) -> None:
    # gpt-4o: input $2.5, cached input $1.25, output $10 per MTok.
    u = usage(input_tokens=10_000, cache_read_tokens=4_000, output_tokens=2_000)
    m = pricer.cost(u, model="gpt-4o", provider="openai", at=AT)
    assert bucket_costs(m) == expected(
        input="0.015",  # (10_000 - 4_000) * 2.5 / 1e6
        cache_read="0.005",  # 4_000 * 1.25 / 1e6
        output="0.02",  # 2_000 * 10 / 1e6
        total="0.04",  # 0.015 + 0.005 + 0.02
    )
    assert (m.input_price_per_1k, m.output_price_per_1k, m.cache_read_price_per_1k) == (
        Decimal("0.0025"),
        Decimal("0.01"),
        Decimal("0.00125"),
    )
    assert (m.currency, m.price_source) == ("USD", GENAI)


def test_openai_reasoning_model_bills_reasoning_as_output_once(pricer: Pricer) -> None:
    # o3-mini: input $1.1, cached input $0.55, output $4.4 per MTok; no separate
    # reasoning price, so reasoning tokens are billed once, inside output.
    u = usage(
        input_tokens=20_000, cache_read_tokens=8_000, output_tokens=5_000, reasoning_tokens=3_000
    )
    assert bucket_costs(pricer.cost(u, model="o3-mini", at=AT)) == expected(
        input="0.0132",  # 12_000 * 1.1 / 1e6
        cache_read="0.0044",  # 8_000 * 0.55 / 1e6
        output="0.022",  # 5_000 * 4.4 / 1e6 (the 3_000 reasoning tokens inside)
        total="0.0396",  # 0.0132 + 0.0044 + 0.022
    )


def test_model_without_cache_price_bills_cached_tokens_at_input_rate(pricer: Pricer) -> None:
    # gpt-4: input $30, output $60 per MTok, no cache price (genai-prices bills it the same way).
    m = pricer.cost(
        usage(input_tokens=1_000, cache_read_tokens=200, output_tokens=100), model="gpt-4", at=AT
    )
    assert bucket_costs(m) == expected(
        input="0.024",  # 800 * 30 / 1e6
        cache_read="0.006",  # 200 * 30 / 1e6
        output="0.006",  # 100 * 60 / 1e6
        total="0.036",
    )
    assert m.cache_read_price_per_1k == Decimal("0.03")  # the rate actually applied


# --- Anthropic ------------------------------------------------------------------


def test_anthropic_haiku_cache_read_and_write(pricer: Pricer) -> None:
    # claude-3-5-haiku: input $0.8, cache read $0.08, cache write $1, output $4 per MTok.
    u = usage(
        input_tokens=3_000, cache_read_tokens=1_000, cache_creation_tokens=1_500, output_tokens=400
    )
    m = pricer.cost(u, model="claude-3-5-haiku-latest", provider="anthropic", at=AT)
    assert bucket_costs(m) == expected(
        input="0.0004",  # (3_000 - 1_000 - 1_500) * 0.8 / 1e6
        cache_read="0.00008",  # 1_000 * 0.08 / 1e6
        cache_write="0.0015",  # 1_500 * 1 / 1e6
        output="0.0016",  # 400 * 4 / 1e6
        total="0.00358",  # 0.0004 + 0.00008 + 0.0015 + 0.0016
    )
    assert (m.cache_read_price_per_1k, m.cache_write_price_per_1k) == (
        Decimal("0.00008"),
        Decimal("0.001"),
    )


def test_anthropic_sonnet_cache_read_and_write(pricer: Pricer) -> None:
    # claude-3-5-sonnet: input $3, cache read $0.3, cache write $3.75, output $15 per MTok.
    u = usage(
        input_tokens=100_000,
        cache_read_tokens=60_000,
        cache_creation_tokens=20_000,
        output_tokens=1_000,
    )
    assert bucket_costs(pricer.cost(u, model="claude-3-5-sonnet-20241022", at=AT)) == expected(
        input="0.06",  # 20_000 * 3 / 1e6
        cache_read="0.018",  # 60_000 * 0.3 / 1e6
        cache_write="0.075",  # 20_000 * 3.75 / 1e6
        output="0.015",  # 1_000 * 15 / 1e6
        total="0.168",
    )


# --- Cache writes kept for one hour (Anthropic's TTL split) ----------------------------

#: Claude on Bedrock: genai-prices has its cache-write price but no 1h one.
BEDROCK_SONNET = "global.anthropic.claude-sonnet-4-20250514-v1:0"


def test_one_hour_cache_writes_at_their_own_rate(pricer: Pricer) -> None:
    # claude-sonnet-4-5: input $3, cache read $0.3, cache write $3.75 (5 minutes),
    # $6 (1 hour), output $15 per MTok.
    u = usage(input_tokens=10_000, cache_read_tokens=2_000, cache_creation_tokens=3_000,
              output_tokens=500)
    m = pricer.cost(u, model="claude-sonnet-4-5", provider="anthropic", at=AT,
                    cache_write_1h_tokens=1_000)
    assert bucket_costs(m) == expected(
        input="0.015",  # 5_000 * 3 / 1e6
        cache_read="0.0006",  # 2_000 * 0.3 / 1e6
        cache_write="0.0135",  # 2_000 * 3.75 / 1e6 + 1_000 * 6 / 1e6
        output="0.0075",  # 500 * 15 / 1e6
        total="0.0366",
    )
    assert (m.cache_write_price_per_1k, m.cache_write_1h_price_per_1k) == (
        Decimal("0.00375"), Decimal("0.006"))
    assert m.price_source == GENAI
    # Without the split every write is billed at the 5-minute rate, and no 1h price shown.
    plain = pricer.cost(u, model="claude-sonnet-4-5", provider="anthropic", at=AT)
    assert (plain.cache_write_cost, plain.cache_write_1h_price_per_1k) == (
        Decimal("0.01125"), None)


def test_one_hour_writes_without_a_price_of_their_own_say_which_rate(pricer: Pricer) -> None:
    # Bedrock's sonnet 4: input $3, cache read $0.3, cache write $3.75, output $15 per
    # MTok, no 1h price: the 1h writes are billed at $3.75 (as genai-prices does), and
    # the cost says so.
    u = usage(input_tokens=10_000, cache_read_tokens=2_000, cache_creation_tokens=3_000,
              output_tokens=500)
    m = pricer.cost(u, model=BEDROCK_SONNET, provider="aws", at=AT, cache_write_1h_tokens=1_000)
    assert bucket_costs(m) == expected(input="0.015", cache_read="0.0006",
                                       cache_write="0.01125", output="0.0075", total="0.03435")
    assert m.cache_write_1h_price_per_1k == m.cache_write_price_per_1k == Decimal("0.00375")
    assert m.price_source == f"{GENAI}; no 1h cache-write price: 1h writes at the cache-write rate"


def test_one_hour_writes_in_price_overrides() -> None:
    u = usage(input_tokens=1_000, cache_creation_tokens=600, output_tokens=10)
    priced = Pricer(overrides={
        "own": {"input": 1, "output": 2, "cache_write": 3, "cache_write_1h": 5},
        "plain": {"input": 1, "output": 2, "cache_write": 3},
    })
    own = priced.cost(u, model="own", at=AT, cache_write_1h_tokens=200)
    # 400 * 1 + 400 * 3 + 200 * 5 + 10 * 2 = 2_620 per million
    assert (own.total_cost, own.cache_write_1h_price_per_1k, own.price_source) == (
        Decimal("0.00262"), Decimal("0.005"), "override")
    plain = priced.cost(u, model="plain", at=AT, cache_write_1h_tokens=200)
    assert plain.total_cost == Decimal("0.00222")  # the 200 at the cache-write rate, 3
    assert plain.price_source == "override; no 1h cache-write price: 1h writes at the cache-write rate"


def test_more_one_hour_writes_than_writes_is_an_error(pricer: Pricer) -> None:
    u = usage(input_tokens=1_000, cache_creation_tokens=100, output_tokens=10)
    m = pricer.cost(u, model="claude-sonnet-4-5", provider="anthropic", at=AT,
                    cache_write_1h_tokens=101)
    assert m.price_status is PriceStatus.ERROR
    assert_all_costs_none(m)


# --- Provider inferred from the model name -------------------------------------------


@pytest.mark.parametrize(("model", "provider"), [
    ("gpt-4o-mini", "openai"),
    ("gpt-4o-mini-2024-07-18", "openai"),
    ("claude-3-5-haiku-20241022", "anthropic"),
    ("gemini-2.0-flash", "google"),
    ("acme-1", None),  # unknown to genai-prices: never a guess
    ("llama3.1", None),  # served by anyone: genai-prices names no provider
    ("", None),
    (None, None),
])
def test_infer_provider_uses_genai_prices_matching(pricer: Pricer, model: str | None,
                                                   provider: str | None) -> None:
    assert pricer.infer_provider(model) == provider
    if provider is not None:
        assert model is not None
        found, _ = data_snapshot.get_snapshot().find_provider_model(model, None, None, None)
        assert found.id == provider


# --- Reasoning priced apart, provider matching --------------------------------------


def test_reasoning_priced_separately_is_taken_out_of_output(pricer: Pricer) -> None:
    # perplexity sonar-deep-research: input $2, output $8, reasoning $3 per MTok.
    u = usage(input_tokens=1_000, output_tokens=5_000, reasoning_tokens=4_000)
    m = pricer.cost(u, model="sonar-deep-research", provider="perplexity", at=AT)
    assert bucket_costs(m) == expected(
        input="0.002",  # 1_000 * 2 / 1e6
        output="0.008",  # (5_000 - 4_000) * 8 / 1e6
        reasoning="0.012",  # 4_000 * 3 / 1e6
        total="0.022",
    )


@pytest.mark.parametrize(
    ("model", "provider", "status"),
    [
        # genai-prices finds these providers only when told.
        ("sonar-deep-research", None, PriceStatus.UNKNOWN_MODEL),
        ("sonar-deep-research", "perplexity", PriceStatus.PRICED),
        ("llama-3.1-8b-instant", None, PriceStatus.UNKNOWN_MODEL),
        ("llama-3.1-8b-instant", "groq", PriceStatus.PRICED),
        # A given provider is binding: no guessing from another provider's prices.
        ("claude-3-5-haiku-latest", "openai", PriceStatus.UNKNOWN_MODEL),
        ("gpt-4o", "ollama", PriceStatus.UNKNOWN_MODEL),
        # Framework provider names are matched by genai-prices' aliases.
        ("claude-3-5-haiku-20241022", "bedrock", PriceStatus.PRICED),
        ("gpt-4o", "azure_openai", PriceStatus.PRICED),
    ],
)
def test_provider_given_or_not(
    pricer: Pricer, model: str, provider: str | None, status: PriceStatus
) -> None:
    m = pricer.cost(
        usage(input_tokens=1_000, output_tokens=100), model=model, provider=provider, at=AT
    )
    assert m.price_status is status
    assert (m.total_cost is not None) is (status is PriceStatus.PRICED)


def test_groq_price_when_provider_given(pricer: Pricer) -> None:
    # groq llama-3.1-8b-instant: input $0.05, output $0.08 per MTok.
    m = pricer.cost(
        usage(input_tokens=1_000_000, output_tokens=500_000),
        model="llama-3.1-8b-instant",
        provider="groq",
        at=AT,
    )
    assert m.total_cost == Decimal("0.09")  # 1e6 * 0.05 / 1e6 + 5e5 * 0.08 / 1e6 = 0.05 + 0.04


# --- Prices that depend on time and volume -----------------------------------------


def test_price_is_chosen_for_the_call_date(pricer: Pricer) -> None:
    # o3 cost $10 in / $40 out per MTok until 2025-06-09, $2 / $8 from 2025-06-10 (UTC).
    u = usage(input_tokens=1_000_000, output_tokens=100_000)
    before = pricer.cost(u, model="o3", at=datetime(2025, 6, 9, 23, 59, 59, tzinfo=timezone.utc))
    after = pricer.cost(u, model="o3", at=datetime(2025, 6, 10, 0, 0, tzinfo=timezone.utc))
    assert before.total_cost == Decimal("14")  # 1e6 * 10 / 1e6 + 1e5 * 40 / 1e6
    assert after.total_cost == Decimal("2.8")  # 1e6 * 2 / 1e6 + 1e5 * 8 / 1e6
    assert before.input_price_per_1k == Decimal("0.01")
    assert after.input_price_per_1k == Decimal("0.002")
    # 01:00 at UTC+2 is still June 9th in UTC; a naive timestamp is read as UTC.
    plus2 = timezone(timedelta(hours=2))
    assert pricer.cost(
        u, model="o3", at=datetime(2025, 6, 10, 1, 0, tzinfo=plus2)
    ).total_cost == Decimal("14")
    assert pricer.cost(u, model="o3", at=datetime(2025, 6, 10, 0, 0)).total_cost == Decimal("2.8")


def test_time_of_day_price_is_not_frozen_by_the_cache(pricer: Pricer) -> None:
    # deepseek-chat: $0.27 input per MTok from 00:30 to 16:30 UTC, $0.135 off-peak.
    u = usage(input_tokens=1_000_000, output_tokens=0)
    peak = pricer.cost(
        u, model="deepseek-chat", at=datetime(2025, 9, 1, 12, 0, tzinfo=timezone.utc)
    )
    off = pricer.cost(u, model="deepseek-chat", at=datetime(2025, 9, 1, 20, 0, tzinfo=timezone.utc))
    assert (peak.total_cost, off.total_cost) == (Decimal("0.27"), Decimal("0.135"))


def test_tiered_price_switches_above_the_threshold(pricer: Pricer) -> None:
    # gemini-1.5-pro: $1.25 in / $5 out per MTok; above 128k input tokens $2.5 / $10.
    at_tier = pricer.cost(
        usage(input_tokens=128_000, output_tokens=1_000), model="gemini-1.5-pro", at=AT
    )
    above = pricer.cost(
        usage(input_tokens=128_001, output_tokens=1_000), model="gemini-1.5-pro", at=AT
    )
    assert at_tier.total_cost == Decimal("0.165")  # 128_000 * 1.25 / 1e6 + 1_000 * 5 / 1e6
    assert above.total_cost == Decimal("0.3300025")  # 128_001 * 2.5 / 1e6 + 1_000 * 10 / 1e6


# --- Unknown model, no usage, bad usage ---------------------------------------------


@pytest.mark.parametrize("model", ["no-such-model-xyz", "", "   ", None])
def test_unknown_model_is_none_never_zero(pricer: Pricer, model: str | None) -> None:
    m = pricer.cost(usage(input_tokens=1_000, output_tokens=10), model=model, at=AT)
    assert m.price_status is PriceStatus.UNKNOWN_MODEL
    assert_all_costs_none(m)


@pytest.mark.parametrize("model", ["no-such-model-xyz", "", None])
def test_no_usage_wins_over_unknown_model(pricer: Pricer, model: str | None) -> None:
    # LlamaIndex's MockLLM has no model name and reports no usage: say "no usage".
    m = pricer.cost(None, model=model, at=AT)
    assert m.price_status is PriceStatus.NO_USAGE
    assert_all_costs_none(m)
    assert m.input_price_per_1k is None


@pytest.mark.parametrize(
    "u",
    [None, LLMTokenUsage(), LLMTokenUsage(total_tokens=50)],
    ids=["none", "empty", "total-only"],
)
def test_no_usage_keeps_prices_but_no_costs(pricer: Pricer, u: LLMTokenUsage | None) -> None:
    m = pricer.cost(u, model="gpt-4o", at=AT)
    assert m.price_status is PriceStatus.NO_USAGE
    assert_all_costs_none(m)
    assert m.input_price_per_1k == Decimal("0.0025")  # $2.5 per MTok
    assert m.price_source == GENAI


def test_bucket_without_a_price_makes_the_cost_unknown(pricer: Pricer) -> None:
    # text-embedding-3-small has only an input price ($0.02 per MTok).
    ok = pricer.cost(
        usage(input_tokens=1_000, output_tokens=0),
        model="text-embedding-3-small",
        provider="openai",
        at=AT,
    )
    assert ok.total_cost == Decimal("0.00002")  # 1_000 * 0.02 / 1e6
    assert ok.output_price_per_1k is None
    bad = pricer.cost(
        usage(input_tokens=1_000, output_tokens=5),
        model="text-embedding-3-small",
        provider="openai",
        at=AT,
    )
    assert bad.price_status is PriceStatus.UNKNOWN_MODEL
    assert_all_costs_none(bad)


def test_inconsistent_usage_is_an_error_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    # Anthropic's raw counts exclude cached tokens; un-normalised they would be mispriced.
    p = Pricer()
    bad = usage(input_tokens=10, cache_read_tokens=500, output_tokens=5)
    with caplog.at_level(logging.WARNING, logger="ragtrail.pricing"):
        first = p.cost(bad, model="claude-3-5-haiku-latest", at=AT)
        second = p.cost(bad, model="claude-3-5-haiku-latest", at=AT)
    assert first.price_status is second.price_status is PriceStatus.ERROR
    assert_all_costs_none(first)
    warnings = [r for r in caplog.records if r.name == "ragtrail.pricing"]
    assert len(warnings) == 1
    assert "exceed input_tokens" in warnings[0].getMessage()


# --- Overrides ----------------------------------------------------------------------


def test_zero_priced_local_model() -> None:
    p = Pricer(overrides={"My-Llama": {"input": 0, "output": 0}})
    m = p.cost(
        usage(input_tokens=5_000, cache_read_tokens=1_000, output_tokens=700),
        model="my-llama",
        provider="ollama",
        at=AT,
    )
    assert m.price_status is PriceStatus.PRICED
    assert costs(m) == (Decimal(0), Decimal(0), Decimal(0), Decimal(0), None, Decimal(0))
    assert (m.price_source, m.currency) == ("override", "USD")


def test_override_mapping_takes_precedence_and_scopes_by_provider() -> None:
    p = Pricer(
        overrides={
            "openai/gpt-4o": ModelPrice(
                input=Decimal("2"), output=Decimal("8"), cache_read=Decimal("1")
            ),
            "gpt-4o-mini": {"input": "0.1", "output": "0.4", "currency": "eur"},
        }
    )
    u = usage(input_tokens=10_000, cache_read_tokens=4_000, output_tokens=2_000)
    scoped = p.cost(u, model="gpt-4o", provider="openai", at=AT)
    assert scoped.price_source == "override"
    assert scoped.total_cost == Decimal("0.032")  # 6_000*2/1e6 + 4_000*1/1e6 + 2_000*8/1e6
    # Without the provider the scoped override does not apply: package data ($2.5/$1.25/$10).
    unscoped = p.cost(u, model="gpt-4o", at=AT)
    assert (unscoped.price_source, unscoped.total_cost) == (GENAI, Decimal("0.04"))
    # An unscoped key applies whatever the provider.
    mini = p.cost(u, model="GPT-4o-mini", provider="azure", at=AT)
    assert mini.total_cost == Decimal("0.0018")  # 10_000 * 0.1 / 1e6 + 2_000 * 0.4 / 1e6
    assert mini.currency == "EUR"


TOML_OVERRIDES = """
["acme/ft-support-bot"]
input = "1.5"
output = 6
cache_read = 0.75
cache_write = 1.875
reasoning = 12

[local-mistral]
input = 0
output = 0
"""


def test_override_from_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "prices.toml"
    path.write_text(TOML_OVERRIDES)
    p = Pricer(overrides=path)
    u = usage(
        input_tokens=4_000,
        cache_read_tokens=1_000,
        cache_creation_tokens=1_000,
        output_tokens=3_000,
        reasoning_tokens=1_000,
    )
    m = p.cost(u, model="ft-support-bot", provider="ACME", at=AT)
    assert bucket_costs(m) == expected(
        input="0.003",  # 2_000 * 1.5 / 1e6
        cache_read="0.00075",  # 1_000 * 0.75 / 1e6
        cache_write="0.001875",  # 1_000 * 1.875 / 1e6
        output="0.012",  # (3_000 - 1_000) * 6 / 1e6
        reasoning="0.012",  # 1_000 * 12 / 1e6
        total="0.029625",
    )
    assert m.price_source == "override"
    assert (
        p.cost(usage(input_tokens=9, output_tokens=9), model="local-mistral", at=AT).total_cost == 0
    )


def test_override_from_json_file_keeps_decimals_exact(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"tiny": {"input": 0.1, "output": 0.3}}))
    prices = load_price_overrides(str(path))
    assert prices == {"tiny": ModelPrice(input=Decimal("0.1"), output=Decimal("0.3"))}
    m = Pricer(overrides=str(path)).cost(
        usage(input_tokens=3, output_tokens=1), model="tiny", at=AT
    )
    assert m.total_cost == Decimal("0.0000006")  # 3*0.1/1e6 + 1*0.3/1e6, no float noise


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("p.yaml", "x: 1", "expected a .toml or .json file"),
        ("p.toml", "[broken", "is not valid toml"),
        ("p.json", "{", "is not valid json"),
        ("p.json", "[1, 2]", "expected a table of model name -> prices"),
        ("p.json", '{"m": 3}', "expected a table of prices per million tokens"),
        ("p.json", '{"m": {"input_mtok": 1, "output": 1}}', "unknown key(s) input_mtok"),
        ("p.json", '{"m": {"input": 1}}', "missing output"),
        ("p.json", '{"m": {"input": -1, "output": 1}}', "'input' must be a finite price >= 0"),
        ("p.json", '{"m": {"input": "abc", "output": 1}}', "'input' is not a number"),
        ("p.json", '{"m": {"input": true, "output": 1}}', "'input' must be a number"),
        ("p.json", '{"m": {"input": "NaN", "output": 1}}', "'input' must be a finite price"),
        ("p.json", '{"m": {"input": 1, "output": 1, "currency": ""}}', "currency"),
        (
            "p.json",
            '{"M": {"input": 1, "output": 1}, "m": {"input": 1, "output": 1}}',
            "given twice",
        ),
    ],
)
def test_bad_override_file_raises_config_error_naming_file_and_problem(
    tmp_path: Path, name: str, content: str, problem: str
) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ConfigError) as info:
        Pricer(overrides=path)
    assert str(path) in str(info.value)
    assert problem in str(info.value)


def test_missing_override_file_and_bad_source_type(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        Pricer(overrides=tmp_path / "absent.toml")
    with pytest.raises(ConfigError, match="mapping or a path"):
        Pricer(overrides=42)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="price overrides: model 'm'"):
        Pricer(overrides={"m": {"output": 1}})


# --- Caching, threads, remote update -------------------------------------------------


def test_concurrent_calls_agree_with_serial_ones() -> None:
    models = ["gpt-4o", "o3-mini", "claude-3-5-haiku-latest", "no-such-model", "deepseek-chat"]
    u = usage(input_tokens=2_000, cache_read_tokens=500, output_tokens=300)
    expected = {m: Pricer().cost(u, model=m, at=AT) for m in models}
    shared = Pricer()
    results: list[tuple[str, LLMCostMetrics]] = []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(50):
            for m in models:
                r = shared.cost(u, model=m, at=AT)
                with lock:
                    results.append((m, r))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8 * 50 * len(models)
    assert all(r == expected[m] for m, r in results)


def test_no_remote_update_unless_opted_in(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[object] = []
    monkeypatch.setattr(genai_prices.UpdatePrices, "start", lambda self, **kw: started.append(self))
    Pricer().cost(usage(input_tokens=1, output_tokens=1), model="gpt-4o", at=AT)
    assert started == []
    with Pricer(allow_remote_update=True):
        assert len(started) == 1


def test_remote_update_replaces_prices_when_opted_in(monkeypatch: pytest.MonkeyPatch) -> None:
    # The fetch is replaced (tests run offline); genai-prices' own updater installs the result.
    providers = copy.deepcopy(data_snapshot.get_snapshot().providers)
    openai = next(p for p in providers if p.id == "openai")
    gpt4o = next(m for m in openai.models if m.id == "gpt-4o")
    gpt4o.prices = gp_types.ModelPrice(input_mtok=Decimal("100"), output_mtok=Decimal("200"))
    fetched = data_snapshot.DataSnapshot(providers=providers, from_auto_update=True)
    monkeypatch.setattr(genai_prices.UpdatePrices, "fetch", lambda self: fetched)
    u = usage(input_tokens=1_000, output_tokens=1_000)
    try:
        with Pricer(allow_remote_update=True) as p:
            assert genai_prices.wait_prices_updated_sync(timeout=30)
            m = p.cost(u, model="gpt-4o", at=AT)
        assert m.total_cost == Decimal("0.3")  # 1_000 * 100 / 1e6 + 1_000 * 200 / 1e6
        assert m.price_source == f"{GENAI} (remote update)"
    finally:
        data_snapshot.set_custom_snapshot(None)
    assert Pricer().cost(u, model="gpt-4o", at=AT).total_cost == Decimal(
        "0.0125"
    )  # bundled data again


# --- Properties ---------------------------------------------------------------------

COUNT = st.integers(min_value=0, max_value=10**12)


@st.composite
def valid_usages(draw: st.DrawFn) -> LLMTokenUsage:
    cache_read, cache_write, uncached = draw(COUNT), draw(COUNT), draw(COUNT)
    reasoning, visible = draw(COUNT), draw(COUNT)
    return LLMTokenUsage(
        input_tokens=uncached + cache_read + cache_write,
        cache_read_tokens=cache_read,
        cache_creation_tokens=cache_write,
        output_tokens=visible + reasoning,
        reasoning_tokens=reasoning,
    )


# One token of each bucket costs a distinct whole amount, so each cost reveals its count.
PER_TOKEN = Pricer(
    overrides={
        "unit": {
            "input": 1_000_000,
            "cache_read": 2_000_000,
            "cache_write": 3_000_000,
            "output": 5_000_000,
            "reasoning": 7_000_000,
        }
    }
)


@given(valid_usages())
def test_buckets_partition_the_tokens_and_total_is_their_sum(u: LLMTokenUsage) -> None:
    m = PER_TOKEN.cost(u, model="unit", at=AT)
    assert m.price_status is PriceStatus.PRICED
    assert None not in costs(m)
    assert m.total_cost == sum(getattr(m, f) for f in COST_FIELDS)
    assert all(c >= 0 for c in costs(m))
    uncached, read, write = m.input_cost, m.cache_read_cost / 2, m.cache_write_cost / 3
    assert (read, write) == (u.cache_read_tokens, u.cache_creation_tokens)
    assert uncached + read + write == u.input_tokens
    assert m.output_cost / 5 + m.reasoning_cost / 7 == u.output_tokens


ORACLE_MODELS = [
    ("gpt-4o", None),
    ("o3-mini", None),
    ("gpt-4", None),
    ("claude-3-5-haiku-latest", None),
    ("claude-3-5-sonnet-latest", "anthropic"),
    ("sonar-deep-research", "perplexity"),
    ("gemini-1.5-pro", None),
    ("claude-sonnet-4-5", "anthropic"),  # tiered, with a 1h cache-write price
    (BEDROCK_SONNET, "aws"),  # a cache-write price, none for 1h writes
]


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(valid_usages(), st.sampled_from(ORACLE_MODELS), st.floats(0, 1))
def test_total_matches_genai_prices_own_calculation(
    pricer: Pricer, u: LLMTokenUsage, model_provider: tuple[str, str | None], share_1h: float
) -> None:
    # genai-prices' Usage also counts cached tokens inside input_tokens, reasoning inside
    # output_tokens and 1h cache writes inside cache writes; its total must equal the sum
    # of our buckets exactly.
    model, provider = model_provider
    one_hour = int((u.cache_creation_tokens or 0) * share_1h)
    theirs = calc_price(
        Usage(
            input_tokens=u.input_tokens,
            cache_read_tokens=u.cache_read_tokens,
            cache_write_tokens=u.cache_creation_tokens,
            cache_write_1h_tokens=one_hour,
            output_tokens=u.output_tokens,
            output_reasoning_tokens=u.reasoning_tokens,
        ),
        model,
        provider_id=provider,
        genai_request_timestamp=AT,
    )
    ours = pricer.cost(u, model=model, provider=provider, at=AT, cache_write_1h_tokens=one_hour)
    assert ours.total_cost == theirs.total_price


ANY_COUNT = st.one_of(
    st.none(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.booleans(),
    st.floats(),
    st.text(max_size=3),
)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    counts=st.fixed_dictionaries({f: ANY_COUNT for f in LLMTokenUsage.model_fields}),
    model=st.one_of(
        st.none(),
        st.sampled_from(["gpt-4o", "o3", "claude-3-5-haiku-latest", "unit"]),
        st.text(max_size=20),
    ),
    provider=st.one_of(
        st.none(), st.sampled_from(["openai", "anthropic", "nope"]), st.text(max_size=10)
    ),
    at=st.one_of(st.none(), st.datetimes(timezones=st.sampled_from([None, timezone.utc]))),
)
def test_cost_never_raises(
    counts: dict[str, Any], model: str | None, provider: str | None, at: datetime | None
) -> None:
    u = LLMTokenUsage.model_construct(**counts)  # bypasses validation: anything may arrive
    m = PER_TOKEN.cost(u, model=model, provider=provider, at=at)
    assert isinstance(m.price_status, PriceStatus)
    if m.price_status is PriceStatus.PRICED:
        assert m.total_cost is not None and m.total_cost >= 0
        assert m.total_cost == sum(c for c in costs(m)[:-1] if c is not None)
    else:
        assert_all_costs_none(m)
