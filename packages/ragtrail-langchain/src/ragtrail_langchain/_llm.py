"""LLM call metadata from LangChain callbacks: the readers the extractors of
:mod:`._extractors` (``CHAT_MODEL_START``, ``LLM_END``, ...) call, one per field group.

Where each value comes from, first found wins:

- provider: ``ls_provider`` in run metadata, unless the model class is the user's own
  and it is only LangChain's default made from the class name; else
  ``response_metadata["model_provider"]``; else, for a class of the user's own, the core
  infers one from the model name (see :mod:`ragtrail.providers`), keeping the class-name
  guess (``ChatAcme`` -> ``acme``) as ``provider_from_class``; for an integration's
  class, that guess;
- model: ``ls_model_name``, then the invocation params' ``model``/``model_name``;
- request parameters: invocation params, then ``ls_temperature``/``ls_max_tokens``/``ls_stop``,
  then the model's constructor arguments in ``serialized["kwargs"]`` (``ChatAnthropic``
  sends its ``stop_sequences`` but reports them nowhere else);
- token usage: ``AIMessage.usage_metadata`` (LangChain's normalised usage, read by the
  core's :func:`~ragtrail.providers.standard_usage`: Anthropic's cache writes by TTL are
  summed and their split kept), then ``llm_output["token_usage"]`` / ``["usage"]`` (the
  provider's own usage, read by the core);
- response metadata: the message's ``response_metadata`` over ``generation_info``, then
  ``llm_output``; rate limits from their ``headers`` when the model exposes them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from langchain_core.outputs import ChatGeneration, Generation, LLMResult
from pydantic import BaseModel

from ragtrail.capture import guarded
from ragtrail.conventions import tool_call_list
from ragtrail.providers import (
    CACHE_CREATION,
    response_fields,
    specific_params,
    standard_usage,
    usage_from_mapping,
)
from ragtrail.providers import request_parameters as provider_request_parameters
from ragtrail.schemas import (
    LLMRequestParameters,
    LLMResponseMetadata,
    LLMTokenUsage,
)

from ._names import LS_MODEL_NAME

__all__ = [
    "class_default_providers",
    "class_provider",
    "constructor_kwargs",
    "first_generation",
    "from_langchain_package",
    "invocation_extras",
    "output_text",
    "request_parameters",
    "response_info",
    "response_metadata_fields",
    "response_tool_calls",
    "token_usage",
]

# LangChain's standard run metadata for three parameters (between the call's own
# parameters and the constructor's, see ``request_parameters``).
_LS_PARAMS = {"temperature": "ls_temperature", "max_tokens": "ls_max_tokens",
              "stop_sequences": "ls_stop"}
_NO_KWARGS: Mapping[str, Any] = MappingProxyType({})  # read-only: shared by every failure


def _valid_fields(model: type[BaseModel], values: Mapping[str, Any]) -> dict[str, Any]:
    """Keep each value the schema accepts; one bad value costs that field only."""
    given = {key: value for key, value in values.items() if value is not None}
    try:
        model.model_validate(given)
        return given  # all valid: one validation instead of one per field
    except Exception:
        pass
    kept: dict[str, Any] = {}
    for key, value in values.items():
        if value is None:
            continue
        try:
            model.model_validate({key: value})
        except Exception:  # a bad value loses its field only
            continue
        kept[key] = value
    return kept


@guarded(default=None)
def class_provider(serialized: Mapping[str, Any] | None) -> str | None:
    """A provider name guessed from the model class (``ChatOpenAI`` -> ``openai``).

    Used when the model reports no ``ls_provider``, and only if the response names no
    ``model_provider`` either.
    """
    ids = (serialized or {}).get("id") or ()
    name = str(ids[-1]) if ids else ""
    if name.startswith("Chat"):
        name = name[4:]
    elif name.endswith("Chat"):
        name = name[:-4]
    return name.lower() or None


@guarded(default=frozenset())
def class_default_providers(serialized: Mapping[str, Any] | None) -> frozenset[str]:
    """The ``ls_provider`` values langchain-core makes up from the class name alone
    (chat models: ``ChatAcme`` / ``AcmeChat`` -> ``acme``; LLMs: ``AcmeLLM`` -> ``acme``).

    A model reporting one of these did not say who serves it: a class of the user's
    own that does not override ``_get_ls_params``.
    """
    ids = (serialized or {}).get("id") or ()
    name = str(ids[-1]) if ids else ""
    guesses = {class_provider(serialized), name.removesuffix("LLM").lower()}
    return frozenset(g for g in guesses if g)


@guarded(default=True)
def from_langchain_package(serialized: Mapping[str, Any] | None) -> bool:
    """Whether the model class comes from LangChain or one of its integration packages
    (``langchain_core``'s fakes, ``langchain_ollama``, ...), not from the user's code."""
    ids: Sequence[Any] = (serialized or {}).get("id") or ()
    return bool(ids) and str(ids[0]).split(".")[0].startswith("langchain")


@guarded(default=_NO_KWARGS)
def constructor_kwargs(serialized: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """The model's constructor arguments as LangChain serialized them (secrets masked)."""
    kwargs = (serialized or {}).get("kwargs")
    return dict(kwargs) if isinstance(kwargs, Mapping) else {}


def request_parameters(
    params: Mapping[str, Any],
    metadata: Mapping[str, Any],
    constructed: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``LLMRequestParameters`` fields from invocation params, ``ls_*`` metadata and,
    last, the constructor arguments (a call's own values come first)."""
    ls_values = {field: metadata.get(key) for field, key in _LS_PARAMS.items()}
    # The core's synonyms and priority rule, the sources in this order.
    values = provider_request_parameters(params, ls_values, constructed or {})
    if values.get("model") is None:
        values["model"] = metadata.get(LS_MODEL_NAME)
    return _valid_fields(LLMRequestParameters, values)


#: Invocation params ragtrail has no field for (kept as provider specifics).
invocation_extras = specific_params


# -- end of call -------------------------------------------------------------------


def first_generation(response: LLMResult) -> Generation | None:
    """The first generation of the first prompt that has one."""
    for generations in response.generations or ():
        if generations:
            return generations[0]
    return None


_Usage = tuple[dict[str, Any], dict[str, Any] | None]  # usage fields, provider specifics


@guarded(default=None)
def _usage_from_message(generation: Generation | None) -> _Usage | None:
    """LangChain's normalised usage on the message, read by the core."""
    message = generation.message if isinstance(generation, ChatGeneration) else None
    usage = getattr(message, "usage_metadata", None)
    if not usage:
        return None
    fields, by_ttl = standard_usage(usage)
    return fields, {CACHE_CREATION: by_ttl} if by_ttl else None


@guarded(default=None)
def _usage_from_mapping(usage: Mapping[str, Any]) -> _Usage | None:
    """A provider's own usage mapping, read by the core (OpenAI or Anthropic shape)."""
    found = usage_from_mapping(usage)
    return (dict(found.token_usage), found.provider_specific()) if found is not None else None


def token_usage(
    generation: Generation | None, info: Mapping[str, Any], llm_output: Mapping[str, Any]
) -> tuple[dict[str, Any] | None, dict[str, Any] | None] | None:
    """Usage from the message, else from ``llm_output`` or the response metadata, and
    what the provider specifics keep of it (Anthropic's cache writes by TTL)."""
    found = _usage_from_message(generation)
    for source in (llm_output, info):
        for key in ("token_usage", "usage"):
            if found is None and isinstance(source.get(key), Mapping):
                found = _usage_from_mapping(source[key])
    if found is None:
        return None
    usage, specific = found
    valid = _valid_fields(LLMTokenUsage, usage) if usage else None
    return valid or None, specific


@guarded(default={})
def response_info(generation: Generation | None) -> dict[str, Any]:
    """``generation_info``, then the message's ``response_metadata`` over it."""
    info: dict[str, Any] = dict(generation.generation_info or {}) if generation else {}
    if isinstance(generation, ChatGeneration):
        info.update(generation.message.response_metadata or {})
    return info


def response_metadata_fields(
    info: Mapping[str, Any], llm_output: Mapping[str, Any]
) -> dict[str, Any]:
    """Finish reason, exact model, request id and system fingerprint."""
    return _valid_fields(LLMResponseMetadata, response_fields(info, llm_output))


def output_text(response: LLMResult) -> str | None:
    """Text of the first generation (all candidates joined when there are several)."""
    texts = [g.text for gens in response.generations or () for g in gens if g.text]
    return "\n\n".join(texts) if texts else None


def response_tool_calls(generation: Generation | None) -> list[dict[str, Any]] | None:
    """The tool calls of the answer: ``AIMessage.tool_calls`` (LangChain's parsed form,
    the same for every provider)."""
    message = generation.message if isinstance(generation, ChatGeneration) else None
    calls = getattr(message, "tool_calls", None)
    return tool_call_list([dict(call) for call in calls]) if calls else None
