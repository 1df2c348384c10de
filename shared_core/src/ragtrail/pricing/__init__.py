"""What LLM calls cost, in ``Decimal``, per token bucket.

Prices come from the data snapshot bundled with the ``genai-prices`` package (never
fetched at run time unless the user opts in), chosen for the call's timestamp, with
user overrides for self-hosted, fine-tuned or negotiated models taking precedence::

    pricer = Pricer(overrides={"my-llama": {"input": 0, "output": 0}})
    metrics = pricer.cost(usage, model="gpt-4o", provider="openai", at=started_at)

Buckets never overlap: uncached input, cache read, cache write (one-hour writes at
their own rate where the data has one), output, and reasoning where the data prices it
apart from output. An unknown model is never a silent zero: its costs are None with
``price_status = "unknown_model"``. ``pricer.infer_provider(model)`` names the provider
genai-prices' own matching finds for a model name, for clients that name none.

Imports only :mod:`ragtrail.schemas` and :mod:`ragtrail.errors` from ragtrail.
"""

from __future__ import annotations

from ._overrides import ModelPrice, OverrideSource, load_price_overrides
from ._pricer import Pricer

__all__ = ["ModelPrice", "OverrideSource", "Pricer", "load_price_overrides"]
