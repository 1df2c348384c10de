"""Core schemas: field names, flat/nested conversion, UTC times, JSON Schema."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ragtrail.schemas import (
    CURRENT_SCHEMA_VERSION,
    CapturedRun,
    DocStage,
    Document,
    LLMCostMetrics,
    LLMMetadata,
    LLMMetadataFlat,
    LLMRateLimitInfo,
    LLMRequestParameters,
    LLMResponseMetadata,
    LLMTokenUsage,
    PriceStatus,
    Run,
    RunKind,
    json_schema,
)
from ragtrail.schemas.llm import FLAT_FIELD_MAP

SEED_GROUPS = {
    "token_usage": {"input_tokens", "output_tokens", "total_tokens", "cache_read_tokens",
                    "cache_creation_tokens", "reasoning_tokens"},
    "cost_metrics": {"input_cost", "output_cost", "cache_read_cost", "cache_write_cost",
                     "total_cost", "input_price_per_1k", "output_price_per_1k", "currency",
                     "price_source"},
    "performance_metrics": {"total_duration_ms", "time_to_first_token_ms", "tokens_per_second",
                            "queue_time_ms", "processing_time_ms"},
    "request_parameters": {"model", "temperature", "top_p", "top_k", "max_tokens",
                           "frequency_penalty", "presence_penalty", "stop_sequences", "seed"},
    "response_metadata": {"finish_reason", "model_version", "request_id", "system_fingerprint"},
    "rate_limit_info": {"requests_limit", "requests_remaining", "requests_reset_at",
                        "tokens_limit", "tokens_remaining", "tokens_reset_at"},
}


def test_llm_metadata_has_every_seed_group_and_field() -> None:
    fields = LLMMetadata.model_fields
    for top in ("provider", "provider_model", "provider_specific", "request_timestamp",
                "response_timestamp", "messages", "prompt_text", "output_text",
                "prompt_template", "prompt_variables", "prompt_template_hash"):
        assert top in fields, top
    for group, names in SEED_GROUPS.items():
        model = fields[group].annotation.__args__[0]  # type: ignore[union-attr]
        assert names <= set(model.model_fields), (group, names - set(model.model_fields))


def test_dump_excludes_none_and_keeps_decimal_exact() -> None:
    meta = LLMMetadata(
        provider="openai",
        token_usage=LLMTokenUsage(input_tokens=1234, output_tokens=567),
        cost_metrics=LLMCostMetrics(total_cost=Decimal("0.02935000001")),
    )
    dumped = meta.dump()
    assert dumped == {
        "provider": "openai",
        "token_usage": {"input_tokens": 1234, "output_tokens": 567},
        "cost_metrics": {"total_cost": "0.02935000001"},
    }
    assert LLMMetadata.model_validate(dumped).cost_metrics.total_cost == Decimal("0.02935000001")


def test_naive_and_offset_times_become_utc() -> None:
    naive = datetime(2025, 10, 6, 15, 30, 0, 123456)
    offset = datetime(2025, 10, 6, 17, 30, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    a = LLMMetadata(request_timestamp=naive)
    b = LLMMetadata(request_timestamp=offset)
    assert a.request_timestamp == b.request_timestamp
    assert a.request_timestamp.tzinfo == timezone.utc
    assert a.request_timestamp.microsecond == 123456


def test_unknown_kind_is_chain() -> None:
    assert RunKind.coerce("retriever") is RunKind.RETRIEVER
    assert RunKind.coerce("LLM") is RunKind.LLM
    assert RunKind.coerce("something_new") is RunKind.CHAIN
    assert DocStage.RETRIEVED.order < DocStage.RERANKED.order < DocStage.IN_PROMPT.order


def test_extra_fields_are_rejected() -> None:
    with pytest.raises(ValueError, match="tokn_usage"):
        LLMMetadata.model_validate({"provder": "x", "tokn_usage": {}})


def test_document_id_defaults_to_content_hash() -> None:
    doc = Document.from_text("WAL is write-ahead logging.")
    assert doc.document_id == doc.content_hash
    assert len(doc.content_hash) == 64
    assert Document.from_text("x", document_id="d1").document_id == "d1"


_money = st.decimals(min_value=0, max_value=1000, places=8, allow_nan=False)
_small = st.integers(min_value=0, max_value=10**9)
_text = st.text(max_size=20)
_time = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                     timezones=st.just(timezone.utc))


@st.composite
def llm_metadata(draw: st.DrawFn) -> LLMMetadata:
    opt = lambda s: st.none() | s  # noqa: E731
    return LLMMetadata(
        provider=draw(opt(_text)),
        provider_model=draw(opt(_text)),
        request_timestamp=draw(opt(_time)),
        response_timestamp=draw(opt(_time)),
        prompt_template_hash=draw(opt(_text)),
        token_usage=draw(opt(st.builds(LLMTokenUsage, input_tokens=opt(_small),
                                       output_tokens=opt(_small), total_tokens=opt(_small),
                                       cache_read_tokens=opt(_small),
                                       cache_creation_tokens=opt(_small),
                                       reasoning_tokens=opt(_small)))),
        cost_metrics=draw(opt(st.builds(LLMCostMetrics, input_cost=opt(_money),
                                        total_cost=opt(_money), currency=opt(_text),
                                        price_status=opt(st.sampled_from(PriceStatus))))),
        request_parameters=draw(opt(st.builds(
            LLMRequestParameters, model=opt(_text),
            temperature=opt(st.floats(0, 2)), seed=opt(_small),
            stop_sequences=opt(st.lists(_text, max_size=3))))),
        response_metadata=draw(opt(st.builds(LLMResponseMetadata, finish_reason=opt(_text),
                                             request_id=opt(_text)))),
        rate_limit_info=draw(opt(st.builds(LLMRateLimitInfo, tokens_limit=opt(_small),
                                           tokens_reset_at=opt(_time)))),
    )


def _drop_empty_groups(meta: LLMMetadata) -> dict:
    data = meta.dump()
    return {k: v for k, v in data.items() if v != {}}


@given(llm_metadata())
def test_flat_round_trip_is_lossless(meta: LLMMetadata) -> None:
    flat = meta.flat()
    assert flat.to_nested().dump() == _drop_empty_groups(meta)
    again = LLMMetadataFlat.model_validate(flat.dump())
    assert again == flat


def test_flat_names_cover_every_nested_scalar() -> None:
    assert FLAT_FIELD_MAP["request_model"] == ("request_parameters", "model")
    assert FLAT_FIELD_MAP["cache_read_tokens"] == ("token_usage", "cache_read_tokens")
    nested = LLMMetadata(
        provider="anthropic",
        request_parameters=LLMRequestParameters(model="claude-3-5-haiku-latest", top_k=5),
        rate_limit_info=LLMRateLimitInfo(requests_remaining=7),
    )
    flat = nested.flat()
    assert (flat.provider, flat.request_model, flat.top_k, flat.requests_remaining) == (
        "anthropic", "claude-3-5-haiku-latest", 5, 7)


def _sample_record() -> CapturedRun:
    now = datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)
    run = Run(id="r1", trace_id="r1", path="p", kind=RunKind.LLM, name="m", started_at=now,
              inputs={"q": [1, 2.5, None]}, outputs="ok")
    return CapturedRun(run=run, llm=LLMMetadata(
        provider="openai", cost_metrics=LLMCostMetrics(total_cost=Decimal("0.1"))))


def test_json_schema_is_valid_and_describes_stored_records() -> None:
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["schema_version"] == CURRENT_SCHEMA_VERSION
    record = json.loads(_sample_record().model_dump_json())
    validator = jsonschema.Draft202012Validator({**schema, "$ref": "#/$defs/CapturedRun"})
    validator.validate(record)
    record["run"]["kind"] = "not-a-kind"
    assert list(validator.iter_errors(record)), "schema must reject a bad kind"


def test_schema_command_prints_the_models_schema() -> None:
    out = subprocess.run([sys.executable, "-m", "ragtrail", "schema"], capture_output=True,
                         text=True, check=True).stdout
    document = json.loads(out)
    assert document.pop("user_hash_key") in ("default", "configured")  # tests/core/test_redaction.py
    assert document == json_schema()


def test_construct_builds_exactly_what_model_construct_builds(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from ragtrail.schemas import CapturedRun, DocumentLink, Run
    from ragtrail.testing.internals import schemas_base
    from reliability._factory import make_record

    record = make_record("construct", approx=False)
    cases: list[tuple[type, dict[str, object]]] = [
        (Run, {name: getattr(record.run, name) for name in Run.model_fields
               if name != "schema_version"}),  # a default left out, as the Recorder does
        (DocumentLink, dict(record.links[0])),
        (CapturedRun, {"run": record.run, "llm": record.llm, "documents": record.documents,
                       "links": record.links}),
    ]
    assert schemas_base._FAST, "the shortcut must be active on the pinned pydantic"
    for cls, values in cases:
        fast = schemas_base.construct(cls, dict(values))
        slow = cls.model_construct(**values)
        assert fast == slow and type(fast) is cls
        assert fast.model_dump_json() == slow.model_dump_json()
        assert fast.model_fields_set == slow.model_fields_set
    built = schemas_base.construct(CapturedRun, {"run": record.run})
    assert built.approx_bytes == 0 and built.documents == [] and built.links == []
    built._approx_bytes = 5  # private attributes work on constructed records
    assert built.approx_bytes == 5

    monkeypatch.setattr(schemas_base, "_FAST", False)  # another pydantic: model_construct itself
    assert schemas_base.construct(Run, dict(cases[0][1])) == Run.model_construct(**cases[0][1])


@given(st.text(max_size=600), st.text(max_size=600))
def test_bounded_keys_are_short_stable_and_keep_values_apart(a: str, b: str) -> None:
    from ragtrail.schemas import MAX_KEY_CHARS, bounded_key

    for value in (a, b, a * 5):
        key = bounded_key(value)
        assert len(key) <= MAX_KEY_CHARS and len(key.encode("utf-8", "surrogatepass")) < 2_704
        assert key == bounded_key(value)  # the same value, the same key
        assert (key == value) == (len(value) <= MAX_KEY_CHARS)
    if a != b:
        assert bounded_key(a) != bounded_key(b)
