"""Validate stored records by their ``schema_version`` and migrate older shapes forward.

Known versions:

* ``"1.0"`` (or no ``schema_version`` and a ``call_id``): the ``LLMCallMetadata``
  dataclass our users logged before ragtrail (call_id, timestamp, model,
  prompt_template, prompt_variables, rendered_prompt, response, latency_ms,
  tokens_used {prompt, completion}, cost_usd, caller_context, version).
* ``"2.0"``: the same plus ``prompt_template_id``, ``error_details`` and ``cache_hit``.
* ``"3.0"``: :class:`~ragtrail.schemas.record.CapturedRun`, what ragtrail writes now.

Migration keeps every value: fields with a home in the current schema move there;
the few without one (``caller_context``, ``cache_hit``, ``prompt_template_id``)
are kept in the run's metadata under ``legacy``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from ._base import to_utc
from .conventions import CURRENT_SCHEMA_VERSION, Framework, RunKind, RunStatus
from .llm import (
    LLMCostMetrics,
    LLMMetadata,
    LLMPerformanceMetrics,
    LLMRequestParameters,
    LLMTokenUsage,
)
from .rag import content_hash
from .record import CapturedRun
from .run import Run, RunError

__all__ = ["SchemaError", "SchemaRegistry", "UnknownSchemaVersion", "registry"]


class SchemaError(ValueError):
    """A stored record does not match the schema its version names."""


class UnknownSchemaVersion(SchemaError):
    """A record names a schema version this release of ragtrail does not know."""

    def __init__(self, version: object) -> None:
        super().__init__(
            f"unknown schema_version {version!r}: this ragtrail knows "
            f"{', '.join(sorted(registry.versions))}; upgrade ragtrail to read it"
        )
        self.version = version


def _parse_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, (int, float)):
        parsed = datetime.fromtimestamp(float(value))
    else:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    result = to_utc(parsed)
    assert result is not None
    return result


def _from_legacy(data: Mapping[str, Any]) -> CapturedRun:
    """Migrate a v1/v2 ``LLMCallMetadata`` record into a CapturedRun, losing nothing."""
    started = _parse_time(data["timestamp"])
    latency = data.get("latency_ms")
    ended = started + timedelta(milliseconds=float(latency)) if latency is not None else None
    tokens = dict(data.get("tokens_used") or {})
    prompt_tokens = tokens.pop("prompt", None)
    completion_tokens = tokens.pop("completion", None)
    total = tokens.pop("total", None)
    if total is None and prompt_tokens is not None and completion_tokens is not None:
        total = int(prompt_tokens) + int(completion_tokens)
    cost = data.get("cost_usd")
    template = data.get("prompt_template")
    legacy: dict[str, Any] = {"schema_version": str(data.get("schema_version", "1.0"))}
    for key in ("caller_context", "cache_hit", "prompt_template_id"):
        if key in data:
            legacy[key] = data[key]
    if tokens:  # token counters the current schema has no name for
        legacy["tokens_used_extra"] = tokens
    error_details = data.get("error_details")
    error = None
    if error_details:
        error = RunError(
            type=str(error_details.get("error_type", "Error")),
            message=str(error_details.get("error_message", "")),
        )
        legacy["error_retry_count"] = error_details.get("retry_count")
    model = data.get("model")
    meta = LLMMetadata(
        provider_model=model,
        request_parameters=LLMRequestParameters(model=model),
        token_usage=LLMTokenUsage(
            input_tokens=prompt_tokens, output_tokens=completion_tokens, total_tokens=total
        ),
        cost_metrics=LLMCostMetrics(
            total_cost=Decimal(str(cost)) if cost is not None else None,
            currency="USD" if cost is not None else None,
            price_source="legacy cost_usd" if cost is not None else None,
        ),
        performance_metrics=LLMPerformanceMetrics(
            total_duration_ms=float(latency) if latency is not None else None
        ),
        request_timestamp=started,
        response_timestamp=ended,
        prompt_text=data.get("rendered_prompt"),
        output_text=data.get("response"),
        prompt_template=template,
        prompt_variables=dict(data["prompt_variables"]) if data.get("prompt_variables") else None,
        prompt_template_hash=content_hash(template) if template else None,
    )
    call_id = str(data["call_id"])
    run = Run(
        id=call_id,
        trace_id=call_id,
        path=f"{started.strftime('%Y%m%dT%H%M%S%fZ')}{call_id}",
        kind=RunKind.LLM,
        name=str(model or "llm"),
        framework=Framework.MANUAL,
        started_at=started,
        ended_at=ended,
        duration_ms=float(latency) if latency is not None else None,
        status=RunStatus.ERROR if error else RunStatus.OK,
        error=error,
        inputs=data.get("rendered_prompt"),
        outputs=data.get("response"),
        app_version=data.get("version"),
        metadata={"legacy": legacy},
    )
    return CapturedRun(run=run, llm=meta)


def _current(data: Mapping[str, Any]) -> CapturedRun:
    return CapturedRun.model_validate(dict(data))


class SchemaRegistry:
    """Maps a schema version to a reader that returns the current record shape."""

    def __init__(self) -> None:
        self._readers: dict[str, Callable[[Mapping[str, Any]], CapturedRun]] = {}

    def register(self, version: str, reader: Callable[[Mapping[str, Any]], CapturedRun]) -> None:
        """Teach the registry to read ``version``."""
        self._readers[version] = reader

    @property
    def versions(self) -> frozenset[str]:
        """Versions this registry reads."""
        return frozenset(self._readers)

    @staticmethod
    def version_of(data: Mapping[str, Any]) -> str:
        """The version a record claims; v1 records predate the field."""
        if "schema_version" in data:
            return str(data["schema_version"])
        if "call_id" in data:
            return "1.0"
        raise SchemaError("record has no schema_version and is not a legacy LLMCallMetadata")

    def validate(self, data: Mapping[str, Any]) -> CapturedRun:
        """Read a stored record of any known version as the current schema.

        Raises :class:`UnknownSchemaVersion` for a version this release does not know,
        and :class:`SchemaError` when the record does not match its version.
        """
        version = self.version_of(data)
        reader = self._readers.get(version)
        if reader is None:
            raise UnknownSchemaVersion(version)
        try:
            return reader(data)
        except (ValidationError, KeyError, TypeError, ValueError) as exc:
            raise SchemaError(f"record is not valid schema_version {version}: {exc}") from exc

    def migrate(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """Migrate a record of any known version to a JSON dict of the current version."""
        return self.validate(data).model_dump(mode="json")


registry = SchemaRegistry()
registry.register("1.0", _from_legacy)
registry.register("2.0", _from_legacy)
registry.register(CURRENT_SCHEMA_VERSION, _current)
