"""Response metadata providers report: finish reason, exact model, request id, fingerprint."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._headers import request_id

__all__ = ["FINISH_REASON_KEYS", "response_fields"]

#: OpenAI (and Gemini through most clients), Anthropic, Ollama.
FINISH_REASON_KEYS = ("finish_reason", "stop_reason", "done_reason")


def _first(source: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    return next((source[k] for k in keys if source.get(k)), None)


def response_fields(info: Mapping[str, Any], fallback: Mapping[str, Any]) -> dict[str, Any]:
    """``LLMResponseMetadata`` values from a response's metadata ``info`` (with its
    ``headers``, if any), then from ``fallback`` (a client's whole-call output).

    The request id comes from the headers (:data:`~ragtrail.providers.REQUEST_ID_HEADERS`),
    else the body's ``request_id`` or ``id``. Values are strings or None.
    """
    values = {
        "finish_reason": _first(info, FINISH_REASON_KEYS),
        "model_version": _first(info, ("model_name", "model"))
        or _first(fallback, ("model_name", "model")),
        "request_id": request_id(info.get("headers")) or _first(info, ("request_id", "id"))
        or fallback.get("id"),
        "system_fingerprint": info.get("system_fingerprint")
        or fallback.get("system_fingerprint"),
    }
    return {k: str(v) if v is not None else None for k, v in values.items()}
