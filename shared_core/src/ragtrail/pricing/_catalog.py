"""Prices from the genai-prices data snapshot: model matching, dated prices, tiers.

The snapshot ships inside the installed package, so this works offline. It is only
refreshed from the network when the user opts in (``allow_remote_update=True``), via
genai-prices' own background updater.
"""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple

import genai_prices
from genai_prices import data_snapshot
from genai_prices.types import ModelInfo, TieredPrices

from .._forksafe import fork_safe_lock
from ._buckets import Rates

__all__ = ["GenaiCatalog"]

logger = logging.getLogger("ragtrail.pricing")

#: Upper bound on cached lookups; model names come from user code, so bound them.
_MAX_CACHED_LOOKUPS = 4096
_CURRENCY = "USD"  # genai-prices data is in US dollars
# genai-prices price keys for our buckets (per million tokens).
_INPUT, _OUTPUT = "input_mtok", "output_mtok"
_CACHE_READ, _CACHE_WRITE = "cache_read_mtok", "cache_write_mtok"
_CACHE_WRITE_1H = "cache_write_1h_mtok"  # Anthropic's one-hour cache writes
_REASONING = "output_reasoning_mtok"


class _Match(NamedTuple):
    model: ModelInfo
    source: str
    provider: str  # genai-prices' provider id


class GenaiCatalog:
    """Thread-safe, cached lookup of genai-prices models.

    The cache holds the *match* (model name + provider -> genai-prices model), the only
    expensive step. The price for the call's time is chosen per call from the matched
    model: dated prices change by day, and some (DeepSeek's off-peak hours) by time of
    day, so caching resolved prices per date would give wrong answers.
    """

    def __init__(self, *, allow_remote_update: bool = False) -> None:
        self._lock = fork_safe_lock(self)
        self._snapshot: object | None = None
        self._matches: dict[tuple[str | None, str], _Match | None] = {}
        self._updater: genai_prices.UpdatePrices | None = None
        _load_bundled_data()
        if allow_remote_update:
            # Opt-in only: genai-prices fetches in its own daemon thread, never blocking us.
            self._updater = genai_prices.UpdatePrices()
            self._updater.start(wait=False)

    def rates(
        self, model: str, provider: str | None, at: datetime, input_tokens: int
    ) -> Rates | None:
        """Prices for ``model`` at ``at``, or None when the data does not know the model.

        ``input_tokens`` (cached ones included) picks the tier of tiered prices, as
        genai-prices does: crossing a tier's threshold prices all tokens at that tier.
        """
        match = self._match(model, provider)
        if match is None:
            return None
        prices = match.model.get_prices(at)
        return Rates(
            input=_rate(prices, _INPUT, input_tokens),
            output=_rate(prices, _OUTPUT, input_tokens),
            cache_read=_rate(prices, _CACHE_READ, input_tokens),
            cache_write=_rate(prices, _CACHE_WRITE, input_tokens),
            reasoning=_rate(prices, _REASONING, input_tokens),
            currency=_CURRENCY,
            source=match.source,
            cache_write_1h=_rate(prices, _CACHE_WRITE_1H, input_tokens),
        )

    def provider_of(self, model: str) -> str | None:
        """The provider genai-prices' own matching finds for ``model`` across every
        provider it knows, or None when it does not know the model."""
        match = self._match(model, None)
        return None if match is None else match.provider

    def close(self) -> None:
        """Stop the remote updater, if this catalog started one."""
        if self._updater is not None:
            self._updater.stop()  # type: ignore[no-untyped-call]  # untyped in genai-prices
            self._updater = None

    def _match(self, model: str, provider: str | None) -> _Match | None:
        snapshot = data_snapshot.get_snapshot()
        key = (provider, model)
        with self._lock:
            if snapshot is not self._snapshot:  # remote update arrived: forget old matches
                self._snapshot = snapshot
                self._matches.clear()
            if key in self._matches:
                return self._matches[key]
        found = _find(snapshot, model, provider)
        with self._lock:
            if snapshot is self._snapshot:
                if len(self._matches) >= _MAX_CACHED_LOOKUPS:
                    self._matches.pop(next(iter(self._matches)))  # oldest first
                self._matches[key] = found
        return found


def _load_bundled_data() -> None:
    """Load the price data now (a few hundred ms, once per process).

    Otherwise the first LLM run to end pays for it, on the application's thread.
    A failure here is left for :meth:`GenaiCatalog.rates` to meet and report per call.
    """
    try:
        data_snapshot.get_snapshot()
    except Exception:
        logger.warning("genai-prices data could not be loaded", exc_info=True)


def _find(snapshot: data_snapshot.DataSnapshot, model: str, provider: str | None) -> _Match | None:
    try:
        found, info = snapshot.find_provider_model(model, None, provider, None)
    except LookupError:
        # Unknown provider or model. We do not retry without the provider: a model
        # served by "ollama" must not be priced at some cloud provider's rate.
        return None
    source = f"genai-prices {genai_prices.__version__}"
    if snapshot.from_auto_update:
        source += " (remote update)"
    return _Match(info, source, found.id)


def _rate(prices: Any, key: str, input_tokens: int) -> Decimal | None:
    value = getattr(prices, key, None)
    if isinstance(value, TieredPrices):
        for tier in sorted(value.tiers, key=lambda t: t.start, reverse=True):
            if input_tokens > tier.start:
                return tier.price
        return value.base
    return value if isinstance(value, Decimal) else None
