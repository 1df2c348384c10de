"""Token buckets and what they cost: the arithmetic, with no price lookup.

Our usage convention (see :class:`~ragtrail.schemas.LLMTokenUsage`): ``input_tokens``
includes ``cache_read_tokens`` and ``cache_creation_tokens``, and ``reasoning_tokens``
are part of ``output_tokens``. Each token is priced in exactly one bucket, so a cached
or reasoning token is never billed twice. Cache writes kept for one hour (Anthropic's
``ttl: "1h"``) are a part of ``cache_creation_tokens``, priced at their own rate where
the price data has one.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from ragtrail.schemas import LLMCostMetrics, LLMTokenUsage, PriceStatus

__all__ = [
    "NO_1H_PRICE_NOTE",
    "Buckets",
    "Rates",
    "UsageError",
    "cost_metrics",
    "has_usage",
    "prices_only",
    "split_usage",
    "status_only",
]

_PER_MTOK = Decimal(1_000_000)
_MTOK_TO_1K = Decimal(1_000)
_ZERO = Decimal(0)


class UsageError(ValueError):
    """Token counts that are not counts, or that contradict each other."""


@dataclass(frozen=True)
class Rates:
    """Prices per million tokens for one call; ``None`` where the source has none."""

    input: Decimal | None
    output: Decimal | None
    cache_read: Decimal | None
    cache_write: Decimal | None
    reasoning: Decimal | None
    currency: str
    source: str
    #: Cache writes kept for one hour; None where the data has no price of its own.
    cache_write_1h: Decimal | None = None

    @property
    def cache_read_or_input(self) -> Decimal | None:
        """Rate for cache reads: without a cache price they are billed as input."""
        return self.input if self.cache_read is None else self.cache_read

    @property
    def cache_write_or_input(self) -> Decimal | None:
        """Rate for cache writes: without a cache price they are billed as input."""
        return self.input if self.cache_write is None else self.cache_write

    @property
    def cache_write_1h_or_write(self) -> Decimal | None:
        """Rate for one-hour cache writes: the cache-write rate when none of their own."""
        return self.cache_write_or_input if self.cache_write_1h is None else self.cache_write_1h


@dataclass(frozen=True)
class Buckets:
    """Disjoint token counts: their sum is input + output tokens."""

    uncached_input: int
    cache_read: int
    cache_write: int  # one-hour writes included
    output: int  # reasoning included
    reasoning: int
    cache_write_1h: int = 0  # the part of cache_write kept for one hour


def has_usage(usage: LLMTokenUsage | None) -> bool:
    """True when there is an input/output split to price (a bare total is not enough)."""
    return usage is not None and (usage.input_tokens is not None or usage.output_tokens is not None)


def split_usage(usage: LLMTokenUsage, cache_write_1h: int | None = None) -> Buckets:
    """Split reported usage into disjoint buckets, or raise :class:`UsageError`.

    ``cache_write_1h`` is the part of ``cache_creation_tokens`` written with a one-hour
    time to live (from the call's provider specifics; None when not reported).
    """
    input_tokens = _count(usage, "input_tokens")
    cache_read = _count(usage, "cache_read_tokens")
    cache_write = _count(usage, "cache_creation_tokens")
    output = _count(usage, "output_tokens")
    reasoning = _count(usage, "reasoning_tokens")
    write_1h = _checked("cache_write_1h_tokens", cache_write_1h)
    if cache_read + cache_write > input_tokens:
        # Usually a provider's raw counts (Anthropic reports input without cached
        # tokens) that were not normalised to our convention; pricing them would be wrong.
        raise UsageError(
            f"cache_read_tokens ({cache_read}) + cache_creation_tokens ({cache_write}) "
            f"exceed input_tokens ({input_tokens}), which must include them"
        )
    if reasoning > output:
        raise UsageError(
            f"reasoning_tokens ({reasoning}) exceed output_tokens ({output}), "
            "which must include them"
        )
    if write_1h > cache_write:
        raise UsageError(
            f"one-hour cache writes ({write_1h}) exceed cache_creation_tokens "
            f"({cache_write}), which must include them"
        )
    uncached = input_tokens - cache_read - cache_write
    return Buckets(uncached, cache_read, cache_write, output, reasoning, write_1h)


def _count(usage: LLMTokenUsage, name: str) -> int:
    return _checked(name, getattr(usage, name))


def _checked(name: str, value: object) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UsageError(f"{name}={value!r} is not a token count")
    return value


class _MissingRate(Exception):
    """A bucket holds tokens but the price data has no rate for it."""


def status_only(status: PriceStatus) -> LLMCostMetrics:
    """Metrics that carry only a status: nothing known about prices or costs."""
    return LLMCostMetrics.model_validate({"price_status": status})


def prices_only(rates: Rates, status: PriceStatus) -> LLMCostMetrics:
    """The prices in ``rates`` with no costs, e.g. when the call reported no usage."""
    return LLMCostMetrics.model_validate({**_price_fields(rates), "price_status": status})


#: Added to the price source when one-hour cache writes were priced at the cache-write
#: rate because the price data has no one-hour price for the model.
NO_1H_PRICE_NOTE = "no 1h cache-write price: 1h writes at the cache-write rate"


def cost_metrics(buckets: Buckets, rates: Rates) -> LLMCostMetrics:
    """Cost per bucket under ``rates``, and their total.

    A bucket that holds tokens but has no rate makes the whole cost unknown
    (``UNKNOWN_MODEL``): a partial sum would look like a real, too-low price.
    """
    try:
        costs = _bucket_costs(buckets, rates)
    except _MissingRate:
        return prices_only(rates, PriceStatus.UNKNOWN_MODEL)
    total = sum((c for c in costs.values() if c is not None), _ZERO)
    fields = _price_fields(rates)
    if buckets.cache_write_1h:
        # Say which rate the one-hour writes were billed at, and why when it is not theirs.
        fields["cache_write_1h_price_per_1k"] = _per_1k(rates.cache_write_1h_or_write)
        if rates.cache_write_1h is None:
            fields["price_source"] = f"{rates.source}; {NO_1H_PRICE_NOTE}"
    return LLMCostMetrics.model_validate(
        {**fields, **costs, "total_cost": total, "price_status": PriceStatus.PRICED}
    )


def _bucket_costs(buckets: Buckets, rates: Rates) -> dict[str, Decimal | None]:
    if rates.reasoning is None:
        # Not priced apart: reasoning tokens stay in the output bucket they belong to.
        reasoning_cost = None
        output_tokens = buckets.output
    else:
        reasoning_cost = _cost(buckets.reasoning, rates.reasoning)
        output_tokens = buckets.output - buckets.reasoning
    return {
        "input_cost": _cost(buckets.uncached_input, rates.input),
        "cache_read_cost": _cost(buckets.cache_read, rates.cache_read_or_input),
        "cache_write_cost": _cost(buckets.cache_write - buckets.cache_write_1h,
                                  rates.cache_write_or_input)
        + _cost(buckets.cache_write_1h, rates.cache_write_1h_or_write),
        "output_cost": _cost(output_tokens, rates.output),
        "reasoning_cost": reasoning_cost,
    }


def _cost(tokens: int, rate_per_mtok: Decimal | None) -> Decimal:
    if tokens == 0:
        return _ZERO
    if rate_per_mtok is None:
        raise _MissingRate
    # Same operation order as genai-prices (price * count / per), so totals agree exactly.
    return rate_per_mtok * tokens / _PER_MTOK


def _price_fields(rates: Rates) -> dict[str, object]:
    return {
        "input_price_per_1k": _per_1k(rates.input),
        "output_price_per_1k": _per_1k(rates.output),
        "cache_read_price_per_1k": _per_1k(rates.cache_read_or_input),
        "cache_write_price_per_1k": _per_1k(rates.cache_write_or_input),
        "currency": rates.currency,
        "price_source": rates.source,
    }


def _per_1k(rate_per_mtok: Decimal | None) -> Decimal | None:
    return None if rate_per_mtok is None else rate_per_mtok / _MTOK_TO_1K
