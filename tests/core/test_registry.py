"""Schema registry: stored records of older versions are migrated, losing nothing."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest

from ragtrail.schemas import (
    CURRENT_SCHEMA_VERSION,
    RunKind,
    RunStatus,
    SchemaError,
    UnknownSchemaVersion,
    content_hash,
    registry,
)

# The LLMCallMetadata v1 example our users logged (seed 000), as its to_dict() wrote it.
V1 = {
    "call_id": "abc123",
    "timestamp": "2024-01-15T10:30:00",
    "model": "gpt-4",
    "prompt_template": "Analyze this feedback: {feedback}",
    "prompt_variables": {"feedback": "Great product but slow shipping"},
    "rendered_prompt": "Analyze this feedback: Great product but slow shipping",
    "response": "Positive sentiment",
    "latency_ms": 1250.0,
    "tokens_used": {"prompt": 10, "completion": 5},
    "cost_usd": 0.00045,
    "caller_context": {"service": "feedback-analyzer", "user_id": "usr_123"},
    "version": "1.0.0",
}


def test_v1_record_migrates_into_current_schema_losing_nothing() -> None:
    rec = registry.validate(V1)
    run, llm = rec.run, rec.llm
    assert rec.schema_version == CURRENT_SCHEMA_VERSION
    assert llm is not None
    assert run.id == run.trace_id == "abc123"
    assert run.kind is RunKind.LLM and run.status is RunStatus.OK
    assert run.started_at == datetime(2024, 1, 15, 10, 30, tzinfo=timezone.utc)
    assert run.duration_ms == 1250.0
    assert (run.ended_at - run.started_at).total_seconds() == 1.25
    assert llm.provider_model == llm.request_parameters.model == "gpt-4"
    assert llm.prompt_template == V1["prompt_template"]
    assert llm.prompt_template_hash == content_hash(V1["prompt_template"])
    assert llm.prompt_variables == V1["prompt_variables"]
    assert llm.prompt_text == run.inputs == V1["rendered_prompt"]
    assert llm.output_text == run.outputs == V1["response"]
    assert llm.performance_metrics.total_duration_ms == 1250.0
    usage = llm.token_usage
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (10, 5, 15)
    assert llm.cost_metrics.total_cost == Decimal("0.00045")
    assert llm.cost_metrics.currency == "USD"
    assert run.app_version == "1.0.0"
    assert run.metadata["legacy"]["caller_context"] == V1["caller_context"]
    assert run.metadata["legacy"]["schema_version"] == "1.0"


def test_every_v1_value_survives_migration() -> None:
    """Each v1 value appears in the migrated record (nothing silently dropped)."""
    migrated = str(registry.migrate(V1))
    for key, value in V1.items():
        if isinstance(value, dict):
            for inner in value.values():
                assert str(inner) in migrated, (key, inner)
        else:
            assert str(value) in migrated or str(value).rstrip("0") in migrated, (key, value)


def test_v2_record_keeps_error_and_cache_hit() -> None:
    v2 = {**V1, "schema_version": "2.0", "prompt_template_id": "tmpl_feedback_v3",
          "cache_hit": True,
          "error_details": {"error_type": "Timeout", "error_message": "slow", "retry_count": 2}}
    rec = registry.validate(v2)
    assert rec.run.status is RunStatus.ERROR
    assert (rec.run.error.type, rec.run.error.message) == ("Timeout", "slow")
    legacy = rec.run.metadata["legacy"]
    assert (legacy["cache_hit"], legacy["prompt_template_id"], legacy["error_retry_count"]) == (
        True, "tmpl_feedback_v3", 2)


def test_current_records_round_trip() -> None:
    current = registry.migrate(V1)
    assert registry.migrate(current) == current


def test_unknown_version_names_the_version() -> None:
    with pytest.raises(UnknownSchemaVersion, match=r"'9\.9'"):
        registry.validate({"schema_version": "9.9"})


def test_bad_record_is_a_clear_schema_error() -> None:
    with pytest.raises(SchemaError, match=r"schema_version 1\.0"):
        registry.validate({"call_id": "x"})
    with pytest.raises(SchemaError, match="no schema_version"):
        registry.validate({"foo": 1})
