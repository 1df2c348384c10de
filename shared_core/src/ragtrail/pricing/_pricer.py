"""The Pricer: what one LLM call cost, from user overrides or the genai-prices data."""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timezone
from types import TracebackType

from ragtrail.schemas import LLMCostMetrics, LLMTokenUsage, PriceStatus

from ._buckets import (
    Rates,
    UsageError,
    cost_metrics,
    has_usage,
    prices_only,
    split_usage,
    status_only,
)
from ._catalog import GenaiCatalog
from ._overrides import ModelPrice, OverrideSource, load_price_overrides, override_key

__all__ = ["Pricer"]

logger = logging.getLogger("ragtrail.pricing")
logger.addHandler(logging.NullHandler())

OVERRIDE_SOURCE = "override"
_WARN_INTERVAL_S = 60.0
_MAX_WARN_KEYS = 1024


class Pricer:
    """Prices LLM calls per token bucket, in ``Decimal``.

    Prices come from ``overrides`` first (a mapping or a TOML/JSON file of prices per
    million tokens, see :func:`~ragtrail.pricing.load_price_overrides`), then from the
    data snapshot bundled with the installed ``genai-prices`` package. Nothing is
    fetched from the network unless ``allow_remote_update`` is True.

    Thread-safe; model lookups are cached. Call :meth:`close` (or use ``with``) when
    remote updates were enabled, to stop the updater.

    Raises:
        ConfigError: ``overrides`` cannot be read or is malformed.
    """

    def __init__(
        self, overrides: OverrideSource | None = None, allow_remote_update: bool = False
    ) -> None:
        self._overrides: dict[str, ModelPrice] = (
            {} if overrides is None else load_price_overrides(overrides)
        )
        self._catalog = GenaiCatalog(allow_remote_update=allow_remote_update)
        self._warned: dict[str, float] = {}
        self._warn_lock = threading.Lock()

    def cost(
        self,
        usage: LLMTokenUsage | None,
        *,
        model: str | None,
        provider: str | None = None,
        at: datetime | None = None,
        cache_write_1h_tokens: int | None = None,
    ) -> LLMCostMetrics:
        """What a call cost. Never raises.

        Args:
            usage: Tokens as reported (``input_tokens`` includes cached tokens,
                ``output_tokens`` includes reasoning tokens).
            model: Model name as sent to or reported by the provider.
            provider: Provider id or framework name (``openai``, ``anthropic``,
                ``bedrock``, ``google_genai``, ...). When given, only that provider's
                prices are used; an unknown provider gives ``unknown_model``.
            at: When the call was made (naive = UTC); picks dated prices. Default: now.
            cache_write_1h_tokens: The part of ``usage.cache_creation_tokens`` written
                with a one-hour time to live (Anthropic reports the split). They are
                priced at the model's one-hour cache-write rate; where the price data has
                none, at its cache-write rate, and ``price_source`` says so.

        Returns:
            Costs per bucket and the prices used, with ``price_status``: ``priced``;
            ``unknown_model`` (costs None); ``no_usage`` (costs None, prices filled when
            known); ``error`` (inconsistent usage or an unexpected failure, logged).
        """
        try:
            return self._cost(usage, model, provider, at, cache_write_1h_tokens)
        except Exception:  # never raise into the caller's LLM run
            self._warn("unexpected", "pricing %r failed unexpectedly", model, exc_info=True)
            return status_only(PriceStatus.ERROR)

    def infer_provider(self, model: str | None) -> str | None:
        """The provider of ``model`` by genai-prices' own model matching, or None.

        For a call whose client does not say who serves it (a chat model class of the
        user's own, ``OpenAILike``): genai-prices resolves well-known model names
        across the providers it knows (``gpt-4o-mini`` -> ``openai``). A model it does
        not know gives None, never a guess. Never raises.
        """
        name = (model or "").strip()
        if not name:
            return None
        try:
            return self._catalog.provider_of(name)
        except Exception:  # never raise into the caller's LLM run
            self._warn("infer", "inferring the provider of %r failed", name, exc_info=True)
            return None

    def close(self) -> None:
        """Stop the remote price updater, if one was started. Idempotent."""
        self._catalog.close()

    def __enter__(self) -> Pricer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _cost(
        self,
        usage: LLMTokenUsage | None,
        model: str | None,
        provider: str | None,
        at: datetime | None,
        cache_write_1h: int | None = None,
    ) -> LLMCostMetrics:
        model_name = (model or "").strip()
        provider_name = (provider or "").strip() or None
        no_usage = usage is None or not has_usage(usage)
        if not model_name:
            # Missing usage is the more useful reason (e.g. a mock model with no name).
            return status_only(PriceStatus.NO_USAGE if no_usage else PriceStatus.UNKNOWN_MODEL)
        input_tokens = usage.input_tokens if usage is not None else None
        rates = self._rates(model_name, provider_name, _when(at), _int_or_zero(input_tokens))
        if rates is None:
            logger.debug("no price for model %r (provider %r)", model_name, provider_name)
            return status_only(PriceStatus.NO_USAGE if no_usage else PriceStatus.UNKNOWN_MODEL)
        if usage is None or no_usage:
            return prices_only(rates, PriceStatus.NO_USAGE)
        try:
            buckets = split_usage(usage, cache_write_1h)
        except UsageError as exc:
            self._warn(f"usage:{model_name}", "cannot price %r: %s", model_name, exc)
            return prices_only(rates, PriceStatus.ERROR)
        return cost_metrics(buckets, rates)

    def _rates(
        self, model: str, provider: str | None, at: datetime, input_tokens: int
    ) -> Rates | None:
        price = self._override(model, provider)
        if price is not None:
            return Rates(
                input=price.input,
                output=price.output,
                cache_read=price.cache_read,
                cache_write=price.cache_write,
                reasoning=price.reasoning,
                currency=price.currency,
                source=OVERRIDE_SOURCE,
                cache_write_1h=price.cache_write_1h,
            )
        return self._catalog.rates(model, provider, at, input_tokens)

    def _override(self, model: str, provider: str | None) -> ModelPrice | None:
        if not self._overrides:
            return None
        if provider is not None:
            scoped = self._overrides.get(override_key(f"{provider}/{model}"))
            if scoped is not None:
                return scoped
        return self._overrides.get(override_key(model))

    def _warn(self, key: str, msg: str, *args: object, exc_info: bool = False) -> None:
        """Log a warning at most once per key and interval: pricing runs on every call."""
        now = time.monotonic()
        with self._warn_lock:
            last = self._warned.get(key)
            if last is not None and now - last < _WARN_INTERVAL_S:
                return
            if len(self._warned) >= _MAX_WARN_KEYS:
                self._warned.clear()
            self._warned[key] = now
        logger.warning(msg, *args, exc_info=exc_info)


def _when(at: datetime | None) -> datetime:
    if at is None:
        return datetime.now(timezone.utc)
    return at if at.tzinfo is not None else at.replace(tzinfo=timezone.utc)


def _int_or_zero(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
