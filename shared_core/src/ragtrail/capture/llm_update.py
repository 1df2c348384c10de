"""The typed seam between adapters and the Recorder: what ``Recorder.update_llm`` takes.

An adapter builds an :class:`LLMUpdate` (a ``TypedDict``, so mypy strict checks every key
where it is written: a misspelled key fails the type check, not a callback at run time)
and hands it to :meth:`ragtrail.capture.Recorder.update_llm`. Keys are the fields of
:class:`~ragtrail.schemas.LLMMetadata`; groups (``token_usage``, ``request_parameters``,
``response_metadata``, ``rate_limit_info``) are plain mappings of their fields, merged
field-wise into what the run already has.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypedDict, cast

__all__ = ["LLMUpdate", "compact"]


class LLMUpdate(TypedDict, total=False):
    """Part of a model call's metadata, as an adapter found it (every key optional)."""

    provider: str | None
    provider_model: str | None
    token_usage: Mapping[str, Any] | None
    request_parameters: Mapping[str, Any] | None
    response_metadata: Mapping[str, Any] | None
    rate_limit_info: Mapping[str, Any] | None
    provider_specific: Mapping[str, Any] | None
    request_timestamp: datetime | None
    response_timestamp: datetime | None
    streamed: bool | None
    messages: list[dict[str, Any]] | None
    prompt_text: str | None
    output_text: str | None
    prompt_template: str | None
    prompt_template_name: str | None
    prompt_variables: dict[str, Any] | None
    prompt_template_hash: str | None
    tools: list[dict[str, Any]] | None
    tool_choice: Any
    tool_calls: list[dict[str, Any]] | None


def compact(update: LLMUpdate, *, falsy: bool = False) -> LLMUpdate:
    """``update`` without its None values (``falsy=True``: without any false value)."""
    kept = {k: v for k, v in update.items() if (v if falsy else v is not None)}
    return cast(LLMUpdate, kept)
