"""What providers say in response headers: rate-limit state and the request id.

OpenAI sends ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}`` with resets as
Go-style durations ("1s", "6m0s", "20ms"); Anthropic sends
``anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}`` with RFC 3339 resets.
Resets are stored as absolute UTC timestamps, relative ones counted from ``now``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from ..guard import guarded

__all__ = ["REQUEST_ID_HEADERS", "lower_headers", "parse_duration_s", "rate_limit_info",
           "request_id"]

#: Headers carrying the provider's id of one request, most specific first (OpenAI and
#: most OpenAI-compatible servers, then Anthropic's two spellings).
REQUEST_ID_HEADERS = ("x-request-id", "request-id", "anthropic-request-id")

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|h|m|s)")
_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_SCHEMES = (
    ("x-ratelimit-limit-{}", "x-ratelimit-remaining-{}", "x-ratelimit-reset-{}"),
    ("anthropic-ratelimit-{}-limit", "anthropic-ratelimit-{}-remaining",
     "anthropic-ratelimit-{}-reset"),
)


def parse_duration_s(text: str) -> float | None:
    """Seconds in a Go-style duration ("6m0s", "1.5s", "20ms") or a plain number."""
    value = text.strip()
    try:
        return float(value)
    except ValueError:
        pass
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(value):
        if match.start() != pos:
            return None
        total += float(match.group(1)) * _UNIT_S[match.group(2)]
        pos = match.end()
    return total if pos == len(value) and pos > 0 else None


def _reset_at(raw: Any, now: datetime) -> datetime | None:
    text = str(raw).strip()
    seconds = parse_duration_s(text)
    if seconds is not None:
        return now + timedelta(seconds=seconds)
    try:
        stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return stamp.astimezone(timezone.utc) if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)


def _count(raw: Any) -> int | None:
    try:
        return int(str(raw).strip())
    except ValueError:
        return None


@guarded(default=None)
def rate_limit_info(headers: Mapping[str, Any], now: datetime) -> dict[str, Any] | None:
    """``LLMRateLimitInfo`` fields found in ``headers``, or None when there are none."""
    lower = {str(k).lower(): v for k, v in headers.items()}
    out: dict[str, Any] = {}
    for bucket in ("requests", "tokens"):
        for limit_key, remaining_key, reset_key in _SCHEMES:
            limit = lower.get(limit_key.format(bucket))
            remaining = lower.get(remaining_key.format(bucket))
            reset = lower.get(reset_key.format(bucket))
            if limit is None and remaining is None and reset is None:
                continue
            values = {
                f"{bucket}_limit": _count(limit) if limit is not None else None,
                f"{bucket}_remaining": _count(remaining) if remaining is not None else None,
                f"{bucket}_reset_at": _reset_at(reset, now) if reset is not None else None,
            }
            out.update({k: v for k, v in values.items() if v is not None})
            break
    return out or None


def lower_headers(headers: Any) -> dict[str, Any]:
    """``headers`` with lower-case names (HTTP names are case-insensitive); {} when
    ``headers`` is not a mapping."""
    if not isinstance(headers, Mapping):
        return {}
    return {str(k).lower(): v for k, v in headers.items()}


def request_id(headers: Any) -> Any:
    """The provider's request id in response ``headers`` (first of
    :data:`REQUEST_ID_HEADERS` with a value), or None."""
    lower = lower_headers(headers)
    return next((lower[h] for h in REQUEST_ID_HEADERS if lower.get(h)), None)
