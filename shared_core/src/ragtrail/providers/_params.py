"""Request parameters: the names providers and clients give them, and one priority rule.

**The rule.** For each :class:`~ragtrail.schemas.LLMRequestParameters` field,
:data:`PARAM_SYNONYMS` lists the names it goes by, and the *first name in that list*
holding a value wins, whatever order the source mapping has. Where a call gives values
in several places (the call's own parameters, then the model's defaults),
:func:`request_parameters` takes each field from the first source that has it: a call's
own value beats a default.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["MAPPED_PARAMS", "NOT_SPECIFIC_PARAMS", "PARAM_SYNONYMS", "first_param",
           "request_parameters", "specific_params"]

#: Request parameter -> the names providers use for it, in priority order.
PARAM_SYNONYMS: dict[str, tuple[str, ...]] = {
    "model": ("model", "model_name", "model_id", "deployment_name"),
    "temperature": ("temperature",),
    "top_p": ("top_p",),
    "top_k": ("top_k",),
    # OpenAI chat (old, new), OpenAI Responses and Gemini, Ollama, Hugging Face.
    "max_tokens": ("max_tokens", "max_completion_tokens", "max_output_tokens", "num_predict",
                   "max_new_tokens"),
    "frequency_penalty": ("frequency_penalty",),
    "presence_penalty": ("presence_penalty",),
    "stop_sequences": ("stop", "stop_sequences"),
    "seed": ("seed", "random_seed"),
}
#: Every name in :data:`PARAM_SYNONYMS`.
MAPPED_PARAMS = frozenset(key for keys in PARAM_SYNONYMS.values() for key in keys)
#: Parameters not kept as provider specifics: large (tools, messages, schemas) or secret.
NOT_SPECIFIC_PARAMS = frozenset({
    "tools", "functions", "messages", "response_format", "responses",
    "api_key", "openai_api_key", "anthropic_api_key"})


def first_param(source: Mapping[str, Any], field: str) -> Any:
    """The value of ``field`` in ``source`` under the first of its synonyms that holds
    one (None values do not count), or None."""
    # A plain loop, not next() over a generator: called for every field of every source
    # on each LLM call, where the generator's set-up cost more than the look-ups.
    for key in PARAM_SYNONYMS[field]:
        value = source.get(key)
        if value is not None:
            return value
    return None


def request_parameters(*sources: Mapping[str, Any]) -> dict[str, Any]:
    """Every parameter of :data:`PARAM_SYNONYMS` found in ``sources`` (earlier sources
    win, see the module's rule); a single ``stop`` string becomes a one-item list.
    Fields found nowhere are None."""
    values: dict[str, Any] = {}
    for field in PARAM_SYNONYMS:
        value = None
        for source in sources:
            value = first_param(source, field)
            if value is not None:
                break
        if field == "stop_sequences" and isinstance(value, str):
            value = [value]
        values[field] = value
    return values


def specific_params(params: Mapping[str, Any]) -> dict[str, Any] | None:
    """The parameters that are neither mapped nor :data:`NOT_SPECIFIC_PARAMS`, or None."""
    extra = {k: v for k, v in params.items()
             if k not in MAPPED_PARAMS and k not in NOT_SPECIFIC_PARAMS and v is not None}
    return extra or None
