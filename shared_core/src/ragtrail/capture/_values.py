"""What the Recorder makes of single values: errors, hidden payloads, LLM metadata.

Pure functions, each safe on odd input: a value they cannot use costs its own field
(or takes a marked placeholder), never the run that holds it.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from .._log import RateLimitedLog, get_logger
from ..guard import error_counter, guarded
from ..redaction import Redactor
from ..schemas import (
    MAX_MONEY,
    LLMCostMetrics,
    LLMMetadata,
    LLMPerformanceMetrics,
    PriceStatus,
    RunError,
    content_hash,
)
from ._safe_json import Limits, SafeJson
from ._state import OpenRun

__all__ = [
    "build_llm",
    "capture_log",
    "error_of",
    "hidden",
    "performance",
    "prompt_text",
    "score_of",
    "storable_cost",
]

#: The capture layer's rate-limited log (the Recorder writes to it too).
capture_log = RateLimitedLog(get_logger("capture"))


def error_of(error: BaseException | str, redactor: Redactor, limits: Limits) -> RunError:
    conv = SafeJson(limits, redactor)
    if isinstance(error, BaseException):
        return RunError(
            type=type(error).__name__,
            message=conv.text(_message(error)),
            stack=_stack(error),
            http_status=_http_status(error),
            retry_after_s=_retry_after(error),
        )
    return RunError(type="Error", message=conv.text(_message(error)))


def _message(error: object) -> str:
    # The application's exception must reach the store even when its __str__ raises:
    # the run is then stored failed with this placeholder instead of staying open.
    try:
        return str(error)
    except Exception as exc:
        return f"<unprintable {type(error).__name__}: str() raised {type(exc).__name__}>"


@guarded(default=None)
def _stack(error: BaseException) -> str | None:
    frames = traceback.extract_tb(error.__traceback__)[-3:]
    return " <- ".join(f"{f.name} ({f.filename.rsplit('/', 1)[-1]}:{f.lineno})"
                       for f in reversed(frames)) or None


@guarded(default=None)
def _http_status(error: BaseException) -> int | None:
    for obj in (error, getattr(error, "response", None)):
        for attr in ("status_code", "status", "http_status"):
            value = getattr(obj, attr, None)
            if isinstance(value, int) and 100 <= value <= 599:
                return value
    return None


@guarded(default=None)
def _retry_after(error: BaseException) -> float | None:
    response = getattr(error, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    value = headers.get("retry-after")
    return float(value) if value is not None else None


def hidden(value: Any, limits: Limits) -> dict[str, Any]:
    """What is kept of a hidden payload: the hash of its text, or of its bounded form.

    Not ``repr(value)``: a repr is built whole whatever its size (a long list of
    documents, gigabytes), may raise, and carries memory addresses that differ from one
    process to the next, so equal payloads would not join on their hash.
    """
    if isinstance(value, str):
        return {"__hidden__": True, "sha256": content_hash(value)}
    # No redaction and no shared cache: this conversion is hashed and thrown away, and a
    # cached snapshot that skipped redaction must never be reused for stored data.
    conv = SafeJson(limits, None)
    text = json.dumps(conv.convert(value), sort_keys=True, ensure_ascii=False,
                      separators=(",", ":"), default=str)
    hidden: dict[str, Any] = {"__hidden__": True, "sha256": content_hash(text)}
    if conv.truncated:
        hidden["truncated"] = True  # the hash covers the payload up to the capture limits
    return hidden


def score_of(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def prompt_text(data: Mapping[str, Any]) -> str:
    parts: list[str] = []
    if isinstance(data.get("prompt_text"), str):
        parts.append(data["prompt_text"])
    for message in data.get("messages") or ():
        content = message.get("content") if isinstance(message, Mapping) else None
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(p.get("text", "") for p in content
                         if isinstance(p, Mapping) and isinstance(p.get("text"), str))
    return "\n".join(parts)


def build_llm(data: dict[str, Any]) -> LLMMetadata:
    """Validate field by field: one bad value loses that field, not the record.

    Inside a group (token usage, request parameters, ...) too: a provider reporting
    garbage for one count keeps the others.
    """
    try:
        return LLMMetadata.model_validate(data)
    except Exception:
        kept: dict[str, Any] = {}
        for key, value in data.items():
            if _valid_llm({key: value}):
                kept[key] = value
                continue
            error_counter.add(f"llm_field.{key}")
            if isinstance(value, Mapping):
                group = {k: v for k, v in value.items() if _valid_llm({key: {k: v}})}
                if group:
                    kept[key] = group
        return LLMMetadata.model_validate(kept)


def _valid_llm(data: dict[str, Any]) -> bool:
    try:
        LLMMetadata.model_validate(data)
    except Exception:
        return False
    return True


def storable_cost(cost: LLMCostMetrics | None) -> LLMCostMetrics | None:
    """The cost, or its status alone when an amount is beyond what can be stored.

    An amount of ``MAX_MONEY`` or more (a garbage token count, a mistyped price
    override) is no real price; storing it would make the database reject the whole
    record, so the call keeps its tokens and says its price is in ``error``.
    """
    if cost is None:
        return None
    amounts = [value for value in cost.__dict__.values() if isinstance(value, Decimal)]
    if all(amount.is_finite() and abs(amount) < MAX_MONEY for amount in amounts):
        return cost
    error_counter.add("recorder.cost_out_of_range")
    capture_log.warning("cost_out_of_range", "ragtrail: a cost or price of %s or more was not "
                 "stored (price status 'error')", MAX_MONEY)
    return LLMCostMetrics(currency=cost.currency, price_source=cost.price_source,
                          price_status=PriceStatus.ERROR)


def performance(meta: LLMMetadata, run: OpenRun, duration_ms: float) -> LLMPerformanceMetrics:
    perf = meta.performance_metrics or LLMPerformanceMetrics()
    if perf.total_duration_ms is None:
        perf.total_duration_ms = duration_ms
    if run.first_token_ns is not None and perf.time_to_first_token_ms is None:
        perf.time_to_first_token_ms = max(run.first_token_ns - run.start_ns, 0) / 1e6
    output = meta.token_usage.output_tokens if meta.token_usage else None
    if output and perf.tokens_per_second is None:
        generating_ms = perf.total_duration_ms - (perf.time_to_first_token_ms or 0.0)
        if generating_ms > 0:
            perf.tokens_per_second = output / (generating_ms / 1000.0)
    return perf
