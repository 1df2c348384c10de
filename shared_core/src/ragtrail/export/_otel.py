"""Stored runs as OpenTelemetry spans: GenAI and OpenInference conventions at once.

Every run becomes one :class:`~opentelemetry.sdk.trace.ReadableSpan` whose trace and
span ids are derived from ragtrail's own ids (a hash), so exporting a trace twice gives
the same ids and a receiver can de-duplicate. Only what is stored is exported; with
``include_content=False`` inputs, outputs, messages, prompt variables, tool arguments
and results, event data and document contents are left out as well.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from ..conventions import tool_call_list
from ..conventions import tool_definitions as canonical_definitions
from ..errors import ConfigError
from ..query import DocumentUse
from ..schemas import DocStage, LLMMetadata, Run, RunStatus
from ._conventions import (
    CONVENTIONS,
    OI_KIND,
    DocumentAttributes,
    GenAI,
    MessageAttributes,
    RerankerAttributes,
    SpanAttributes,
    ToolAttributes,
    ToolCallAttributes,
)
from ._views import RunView

__all__ = ["SpanOptions", "span_ids", "to_spans"]

_SCOPE = InstrumentationScope("ragtrail", None)
_JSON = "application/json"
_TEXT = "text/plain"


@dataclass(frozen=True)
class SpanOptions:
    """How runs become spans.

    ``conventions``: any of ``"genai"`` and ``"openinference"`` (ragtrail's own
    ``ragtrail.*`` attributes are always written). ``include_content=False`` exports
    no inputs, outputs, messages, tool arguments or results, or document contents.
    """

    conventions: tuple[str, ...] = CONVENTIONS
    include_content: bool = True

    def __post_init__(self) -> None:
        conventions = tuple(self.conventions)
        unknown = [c for c in conventions if c not in CONVENTIONS]
        if unknown or not conventions:
            raise ConfigError(f"conventions must be some of {', '.join(CONVENTIONS)}, "
                              f"got {', '.join(map(str, conventions)) or 'none'}")
        object.__setattr__(self, "conventions", conventions)

    @classmethod
    def parse(cls, conventions: str | Sequence[str] | None,
              include_content: bool = True) -> SpanOptions:
        """Options from ``"genai,openinference"`` or a sequence of names."""
        if conventions is None:
            return cls(include_content=include_content)
        if isinstance(conventions, str):
            names = tuple(part.strip().lower() for part in conventions.split(",") if part.strip())
        else:
            names = tuple(str(part).strip().lower() for part in conventions)
        return cls(conventions=names, include_content=include_content)

    @property
    def genai(self) -> bool:
        """Write the OpenTelemetry GenAI attributes."""
        return "genai" in self.conventions

    @property
    def openinference(self) -> bool:
        """Write the OpenInference attributes."""
        return "openinference" in self.conventions


def _digest(*parts: str) -> bytes:
    return hashlib.sha256("\x00".join(parts).encode("utf-8", "surrogatepass")).digest()


def span_ids(trace_id: str, run_id: str) -> tuple[int, int]:
    """The (OpenTelemetry trace id, span id) of a run: the same every time."""
    otel_trace = int.from_bytes(_digest("ragtrail.trace", trace_id)[:16], "big") or 1
    otel_span = int.from_bytes(_digest("ragtrail.span", run_id)[:8], "big") or 1
    return otel_trace, otel_span


def _ns(value: datetime) -> int:
    return int(value.timestamp() * 1_000_000) * 1000


def _json(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False, sort_keys=True)


def _text(value: Any) -> tuple[str, str]:
    """A payload as (text, mime type): strings as they are, anything else as JSON."""
    if isinstance(value, str):
        return value, _TEXT
    return _json(value), _JSON


class _Attrs(dict[str, Any]):
    """Attribute dict that drops None values and turns Decimals into floats."""

    def put(self, key: str, value: Any) -> None:
        if value is None:
            return
        if isinstance(value, Decimal):
            value = float(value)
        elif isinstance(value, (list, tuple)):
            items = [v for v in value if v is not None]
            if not items:
                return
            # OTLP arrays hold primitives of one type; structured lists travel as JSON.
            primitive = all(isinstance(v, (str, bool, int, float)) for v in items)
            value = list(items) if primitive and len({type(v) for v in items}) == 1 \
                else _json(items)
        elif not isinstance(value, (str, bool, int, float)):
            value = _json(value)
        self[key] = value


def to_spans(views: Iterable[RunView], options: SpanOptions | None = None) -> list[ReadableSpan]:
    """One span per run, with parent links, times, status, exception and custom events."""
    options = options or SpanOptions()
    return [_span(view, options) for view in views]


def _span(view: RunView, options: SpanOptions) -> ReadableSpan:
    run = view.run
    trace_int, span_int = span_ids(run.trace_id, run.id)
    context = SpanContext(trace_int, span_int, is_remote=False,
                          trace_flags=TraceFlags(TraceFlags.SAMPLED))
    parent = None
    if run.parent_id is not None and run.parent_id != run.id:
        parent = SpanContext(trace_int, span_ids(run.trace_id, run.parent_id)[1], is_remote=False,
                             trace_flags=TraceFlags(TraceFlags.SAMPLED))
    attrs = _Attrs()
    _common(attrs, run, options)
    kind = run.kind.value
    if view.llm is not None:
        _llm(attrs, view.llm, run, options)
    elif kind == "tool":
        _tool(attrs, run, options)
    elif kind == "agent" and options.genai:
        attrs.put(GenAI.OPERATION_NAME, GenAI.INVOKE_AGENT)
        attrs.put(GenAI.AGENT_NAME, run.name)
    elif kind == "embedding" and options.genai:
        attrs.put(GenAI.OPERATION_NAME, GenAI.EMBEDDINGS)
    if options.openinference and kind == "agent":
        attrs.put(SpanAttributes.AGENT_NAME, run.name)
    _documents(attrs, run, view.documents, options)
    start = _ns(run.started_at)
    end = _end_ns(run, start)
    status, events = _status(run, options, end)
    events += _custom_events(run, options, start)
    return ReadableSpan(
        name=run.name or kind,
        context=context,
        parent=parent,
        resource=_resource(run.app_name, run.app_version, options),
        attributes=dict(attrs),
        events=events,
        kind=SpanKind.CLIENT if view.llm is not None else SpanKind.INTERNAL,
        status=status,
        start_time=start,
        end_time=end,
        instrumentation_scope=_SCOPE,
    )


_RESOURCES: dict[tuple[str | None, str | None, bool], Resource] = {}


def _resource(app_name: str | None, app_version: str | None, options: SpanOptions) -> Resource:
    key = (app_name, app_version, options.openinference)
    resource = _RESOURCES.get(key)
    if resource is None:
        attrs: dict[str, str] = {"service.name": app_name or "ragtrail",
                                 "telemetry.sdk.name": "ragtrail"}
        if app_version:
            attrs["service.version"] = app_version
        if options.openinference and app_name:
            attrs["openinference.project.name"] = app_name
        resource = Resource(attrs)
        if len(_RESOURCES) < 1024:
            _RESOURCES[key] = resource
    return resource


def _end_ns(run: Run, start: int) -> int:
    if run.ended_at is not None:
        return max(start, _ns(run.ended_at))
    if run.duration_ms is not None:
        return start + int(run.duration_ms * 1_000_000)
    return start


def _common(attrs: _Attrs, run: Run, options: SpanOptions) -> None:
    attrs.put("ragtrail.run.id", run.id)
    attrs.put("ragtrail.trace.id", run.trace_id)
    attrs.put("ragtrail.run.kind", run.kind.value)
    attrs.put("ragtrail.run.status", run.status.value)
    attrs.put("ragtrail.framework", run.framework.value)
    if run.retries:
        attrs.put("ragtrail.run.retries", run.retries)
    if run.truncated:
        attrs.put("ragtrail.truncated", True)
    if run.redacted:
        attrs.put("ragtrail.redacted", True)
    attrs.put("ragtrail.request_type", run.request_type)
    if run.parent_id is None and run.environment:
        attrs.put("ragtrail.environment", run.environment)
    if options.openinference:
        attrs.put(SpanAttributes.OPENINFERENCE_SPAN_KIND, OI_KIND.get(run.kind.value, "CHAIN"))
        attrs.put(SpanAttributes.SESSION_ID, run.session_id)
        attrs.put(SpanAttributes.USER_ID, run.user_hash)
        if run.metadata:
            attrs.put(SpanAttributes.METADATA, run.metadata)
        if run.tags:
            attrs.put(SpanAttributes.TAG_TAGS, run.tags)
        if options.include_content:
            for key, mime_key, value in (
                (SpanAttributes.INPUT_VALUE, SpanAttributes.INPUT_MIME_TYPE, run.inputs),
                (SpanAttributes.OUTPUT_VALUE, SpanAttributes.OUTPUT_MIME_TYPE, run.outputs),
            ):
                if value is not None:
                    text, mime = _text(value)
                    attrs.put(key, text)
                    attrs.put(mime_key, mime)
    if options.genai:
        attrs.put(GenAI.CONVERSATION_ID, run.session_id)
        if run.parent_id is None and run.kind.value == "chain":
            attrs.put(GenAI.OPERATION_NAME, GenAI.INVOKE_WORKFLOW)


def _status(run: Run, options: SpanOptions, end: int) -> tuple[Status, list[Event]]:
    if run.status is RunStatus.OK:
        return Status(StatusCode.OK), []
    if run.status is RunStatus.ERROR:
        error = run.error
        description = f"{error.type}: {error.message}" if error is not None else "error"
        events = []
        if error is not None:
            event_attrs = _Attrs()
            event_attrs.put("exception.type", error.type)
            event_attrs.put("exception.message", error.message)
            event_attrs.put("exception.stacktrace", error.stack)
            event_attrs.put("http.response.status_code", error.http_status)
            events.append(Event("exception", dict(event_attrs), timestamp=end))
        return Status(StatusCode.ERROR, description), events
    # Cancelled and abandoned runs did not fail: no error is claimed (ragtrail.run.status).
    return Status(StatusCode.UNSET), []


def _custom_events(run: Run, options: SpanOptions, start: int) -> list[Event]:
    events = []
    for item in run.events:
        if not isinstance(item, Mapping):
            continue
        at = start
        when = item.get("at")
        if isinstance(when, str):
            with contextlib.suppress(ValueError):
                at = _ns(datetime.fromisoformat(when.replace("Z", "+00:00")))
        event_attrs = _Attrs()
        if options.include_content and item.get("data") is not None:
            event_attrs.put("ragtrail.event.data", item.get("data"))
        events.append(Event(str(item.get("name") or "event"), dict(event_attrs), timestamp=at))
    return events


# --- LLM calls -------------------------------------------------------------------------


def _llm(attrs: _Attrs, meta: LLMMetadata, run: Run, options: SpanOptions) -> None:
    params = meta.request_parameters
    response = meta.response_metadata
    usage = meta.token_usage
    request_model = (params.model if params is not None else None) or meta.provider_model
    response_model = (response.model_version if response is not None else None) \
        or meta.provider_model or request_model
    definitions = tool_definitions(meta)
    calls = tool_calls(meta)
    if options.genai:
        operation = GenAI.CHAT if meta.messages is not None else GenAI.TEXT_COMPLETION
        if run.kind.value == "embedding":
            operation = GenAI.EMBEDDINGS
        attrs.put(GenAI.OPERATION_NAME, operation)
        attrs.put(GenAI.PROVIDER_NAME, meta.provider)
        attrs.put(GenAI.REQUEST_MODEL, request_model)
        attrs.put(GenAI.RESPONSE_MODEL, response_model)
        if params is not None:
            for key, value in ((GenAI.REQUEST_TEMPERATURE, params.temperature),
                               (GenAI.REQUEST_TOP_P, params.top_p),
                               (GenAI.REQUEST_TOP_K, params.top_k),
                               (GenAI.REQUEST_MAX_TOKENS, params.max_tokens),
                               (GenAI.REQUEST_FREQUENCY_PENALTY, params.frequency_penalty),
                               (GenAI.REQUEST_PRESENCE_PENALTY, params.presence_penalty),
                               (GenAI.REQUEST_STOP_SEQUENCES, params.stop_sequences),
                               (GenAI.REQUEST_SEED, params.seed)):
                attrs.put(key, value)
        if response is not None:
            attrs.put(GenAI.RESPONSE_ID, response.request_id)
            if response.finish_reason:
                attrs.put(GenAI.RESPONSE_FINISH_REASONS, [response.finish_reason])
        if usage is not None:
            attrs.put(GenAI.USAGE_INPUT_TOKENS, usage.input_tokens)
            attrs.put(GenAI.USAGE_OUTPUT_TOKENS, usage.output_tokens)
            attrs.put(GenAI.USAGE_CACHE_READ, usage.cache_read_tokens)
            attrs.put(GenAI.USAGE_CACHE_CREATION, usage.cache_creation_tokens)
            attrs.put(GenAI.USAGE_REASONING, usage.reasoning_tokens)
        if definitions:
            attrs.put(GenAI.TOOL_DEFINITIONS, [
                {"type": "function", "name": d["name"],
                 **({"description": d["description"]} if d.get("description") else {}),
                 **({"parameters": d["parameters"]} if d.get("parameters") is not None else {})}
                for d in definitions])
        if options.include_content:
            if meta.messages is not None:
                attrs.put(GenAI.INPUT_MESSAGES, [_genai_message(m) for m in meta.messages])
            elif meta.prompt_text is not None:
                attrs.put(GenAI.INPUT_MESSAGES, [
                    {"role": "user", "parts": [{"type": "text", "content": meta.prompt_text}]}])
            parts: list[dict[str, Any]] = []
            if meta.output_text:
                parts.append({"type": "text", "content": meta.output_text})
            parts += [{"type": "tool_call", "id": c.get("id"), "name": c["name"],
                       "arguments": c.get("arguments")} for c in calls]
            if parts:
                message: dict[str, Any] = {"role": "assistant", "parts": parts}
                if response is not None and response.finish_reason:
                    message["finish_reason"] = response.finish_reason
                attrs.put(GenAI.OUTPUT_MESSAGES, [message])
    if options.openinference:
        attrs.put(SpanAttributes.LLM_MODEL_NAME, response_model)
        attrs.put(SpanAttributes.LLM_PROVIDER, meta.provider)
        attrs.put(SpanAttributes.LLM_SYSTEM, meta.provider)
        if params is not None:
            invocation = params.dump()
            if invocation:
                attrs.put(SpanAttributes.LLM_INVOCATION_PARAMETERS, invocation)
        if usage is not None:
            attrs.put(SpanAttributes.LLM_TOKEN_COUNT_PROMPT, usage.input_tokens)
            attrs.put(SpanAttributes.LLM_TOKEN_COUNT_COMPLETION, usage.output_tokens)
            attrs.put(SpanAttributes.LLM_TOKEN_COUNT_TOTAL, usage.total_tokens)
            attrs.put(SpanAttributes.LLM_TOKEN_COUNT_PROMPT_DETAILS_CACHE_READ,
                      usage.cache_read_tokens)
            attrs.put(SpanAttributes.LLM_TOKEN_COUNT_PROMPT_DETAILS_CACHE_WRITE,
                      usage.cache_creation_tokens)
            attrs.put(SpanAttributes.LLM_TOKEN_COUNT_COMPLETION_DETAILS_REASONING,
                      usage.reasoning_tokens)
        cost = meta.cost_metrics
        if cost is not None:
            attrs.put(SpanAttributes.LLM_COST_PROMPT, _sum(cost.input_cost, cost.cache_read_cost,
                                                          cost.cache_write_cost))
            attrs.put(SpanAttributes.LLM_COST_COMPLETION, cost.output_cost)
            attrs.put(SpanAttributes.LLM_COST_TOTAL, cost.total_cost)
        if response is not None:
            attrs.put(SpanAttributes.LLM_FINISH_REASON, response.finish_reason)
        for index, definition in enumerate(definitions):
            attrs.put(f"{SpanAttributes.LLM_TOOLS}.{index}.{ToolAttributes.TOOL_JSON_SCHEMA}",
                      {"type": "function", "function": {
                          key: definition[key] for key in ("name", "description", "parameters")
                          if definition.get(key) is not None}})
        if options.include_content:
            if meta.messages is not None:
                for index, msg in enumerate(meta.messages):
                    _oi_message(attrs, f"{SpanAttributes.LLM_INPUT_MESSAGES}.{index}", msg)
            elif meta.prompt_text is not None:
                attrs.put(f"{SpanAttributes.LLM_PROMPTS}.0.prompt.text", meta.prompt_text)
            if meta.output_text is not None or calls:
                prefix = f"{SpanAttributes.LLM_OUTPUT_MESSAGES}.0"
                _oi_message(attrs, prefix, {"role": "assistant", "content": meta.output_text,
                                            "tool_calls": calls})
            attrs.put(SpanAttributes.LLM_PROMPT_TEMPLATE, meta.prompt_template)
            if meta.prompt_variables:
                attrs.put(SpanAttributes.LLM_PROMPT_TEMPLATE_VARIABLES, meta.prompt_variables)
    _ragtrail_llm(attrs, meta)


def _ragtrail_llm(attrs: _Attrs, meta: LLMMetadata) -> None:
    attrs.put("ragtrail.llm.provider_model", meta.provider_model)
    attrs.put("ragtrail.prompt_template.hash", meta.prompt_template_hash)
    cost = meta.cost_metrics
    if cost is not None:
        for bucket in ("input", "output", "cache_read", "cache_write", "reasoning", "total"):
            attrs.put(f"ragtrail.cost.{bucket}", getattr(cost, f"{bucket}_cost"))
        for bucket in ("input", "output", "cache_read", "cache_write"):
            attrs.put(f"ragtrail.price.{bucket}_per_1k", getattr(cost, f"{bucket}_price_per_1k"))
        attrs.put("ragtrail.cost.currency", cost.currency)
        attrs.put("ragtrail.price.source", cost.price_source)
        attrs.put("ragtrail.price.status", cost.price_status.value if cost.price_status else None)
    perf = meta.performance_metrics
    if perf is not None:
        attrs.put("ragtrail.llm.time_to_first_token_ms", perf.time_to_first_token_ms)
        attrs.put("ragtrail.llm.tokens_per_second", perf.tokens_per_second)
    response = meta.response_metadata
    if response is not None:
        attrs.put("ragtrail.llm.system_fingerprint", response.system_fingerprint)


def _sum(*values: Decimal | None) -> Decimal | None:
    present = [v for v in values if v is not None]
    return sum(present, Decimal(0)) if present else None


def _content_text(content: Any) -> str | None:
    if content is None or isinstance(content, str):
        return content
    return _json(content)


def _genai_message(message: Mapping[str, Any]) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    content = message.get("content")
    if content not in (None, ""):
        parts.append({"type": "text", "content": _content_text(content)})
    for call in _calls_of(message.get("tool_calls")):
        parts.append({"type": "tool_call", "id": call.get("id"), "name": call["name"],
                      "arguments": call.get("arguments")})
    out: dict[str, Any] = {"role": str(message.get("role") or "user"), "parts": parts}
    if message.get("tool_call_id"):
        out["parts"] = [{"type": "tool_call_response", "id": message["tool_call_id"],
                         "response": _content_text(content)}]
    return out


def _oi_message(attrs: _Attrs, prefix: str, message: Mapping[str, Any]) -> None:
    attrs.put(f"{prefix}.{MessageAttributes.MESSAGE_ROLE}", str(message.get("role") or "user"))
    attrs.put(f"{prefix}.{MessageAttributes.MESSAGE_CONTENT}",
              _content_text(message.get("content")))
    attrs.put(f"{prefix}.{MessageAttributes.MESSAGE_NAME}", message.get("name"))
    attrs.put(f"{prefix}.{MessageAttributes.MESSAGE_TOOL_CALL_ID}", message.get("tool_call_id"))
    for index, call in enumerate(_calls_of(message.get("tool_calls"))):
        call_prefix = f"{prefix}.{MessageAttributes.MESSAGE_TOOL_CALLS}.{index}"
        attrs.put(f"{call_prefix}.{ToolCallAttributes.TOOL_CALL_ID}", call.get("id"))
        attrs.put(f"{call_prefix}.{ToolCallAttributes.TOOL_CALL_FUNCTION_NAME}", call["name"])
        arguments = call.get("arguments")
        if arguments is not None:
            attrs.put(f"{call_prefix}.{ToolCallAttributes.TOOL_CALL_FUNCTION_ARGUMENTS_JSON}",
                      arguments if isinstance(arguments, str) else _json(arguments))


# --- tools (as stored by the agentic-lineage capture, when present) -------------------


def _mapping(item: Any) -> Mapping[str, Any] | None:
    """A dict, or a pydantic model's dump; None for anything else."""
    if isinstance(item, Mapping):
        return item
    dump = getattr(item, "model_dump", None)
    data = dump() if callable(dump) else None
    return data if isinstance(data, Mapping) else None


def _calls_of(value: Any) -> list[dict[str, Any]]:
    """Tool calls of a message as sent, in either common shape: {name, args|arguments,
    id} or OpenAI's {id, function: {name, arguments}}; anything without a name is
    skipped. Unlike the core's canonical reading, the arguments stay as sent (OpenAI's
    JSON text is exported as that text)."""
    calls = []
    for raw in value if isinstance(value, list) else []:
        item = _mapping(raw)
        if item is None:
            continue
        function: Mapping[str, Any] = _mapping(item.get("function")) or {}
        name = item.get("name") or function.get("name")
        if not name:
            continue
        arguments = item.get("arguments", item.get("args", function.get("arguments")))
        calls.append({"id": item.get("id"), "name": str(name), "arguments": arguments})
    return calls


def tool_calls(meta: LLMMetadata) -> list[dict[str, Any]]:
    """The tool calls the model asked for, from the stored LLM metadata (if any), in the
    core's canonical shape (:func:`ragtrail.conventions.tool_call_list`)."""
    return tool_call_list(meta.tool_calls) or []


def tool_definitions(meta: LLMMetadata) -> list[dict[str, Any]]:
    """The tools offered to the model, from the stored LLM metadata (if any), in the
    core's canonical shape (:func:`ragtrail.conventions.tool_definitions`)."""
    return canonical_definitions(meta.tools) or []


def _tool_call_id(run: Run) -> str | None:
    """The id of the tool call a tool run answered: from its metadata (LlamaIndex), else
    from its output when that is the tool message it returned (LangChain's ToolMessage
    carries ``tool_call_id``)."""
    for source in (run.metadata, run.outputs):
        if isinstance(source, Mapping):
            call_id = source.get("tool_call_id")
            if isinstance(call_id, str) and call_id:
                return call_id
    return None


def _tool(attrs: _Attrs, run: Run, options: SpanOptions) -> None:
    call_id = _tool_call_id(run)
    if options.genai:
        attrs.put(GenAI.OPERATION_NAME, GenAI.EXECUTE_TOOL)
        attrs.put(GenAI.TOOL_NAME, run.name)
        attrs.put(GenAI.TOOL_CALL_ID, call_id)
        if options.include_content:
            attrs.put(GenAI.TOOL_CALL_ARGUMENTS, run.inputs)
            attrs.put(GenAI.TOOL_CALL_RESULT, run.outputs)
    if options.openinference:
        attrs.put(SpanAttributes.TOOL_NAME, run.name)
        attrs.put(SpanAttributes.TOOL_ID, call_id)


# --- documents -------------------------------------------------------------------------


def _documents(attrs: _Attrs, run: Run, uses: Sequence[DocumentUse],
               options: SpanOptions) -> None:
    if not uses:
        return
    by_stage: dict[DocStage, list[DocumentUse]] = {}
    for use in uses:
        by_stage.setdefault(use.stage, []).append(use)
        prefix = f"ragtrail.documents.{use.stage.value}.{use.rank}"
        attrs.put(f"{prefix}.document.id", use.document_id)
        attrs.put(f"{prefix}.document.content_hash", use.content_hash)
        attrs.put(f"{prefix}.document.score", use.score)
        attrs.put(f"{prefix}.document.input_rank", use.input_rank)
    for stage, stage_uses in by_stage.items():
        attrs.put(f"ragtrail.documents.{stage.value}.count", len(stage_uses))
    retrieved = by_stage.get(DocStage.RETRIEVED, [])
    reranked = by_stage.get(DocStage.RERANKED, [])
    if options.openinference:
        if run.kind.value == "retriever":
            for use in retrieved:
                _oi_document(attrs, f"{SpanAttributes.RETRIEVAL_DOCUMENTS}.{use.rank}", use,
                             options)
        if reranked:
            for use in reranked:
                _oi_document(attrs, f"{RerankerAttributes.RERANKER_OUTPUT_DOCUMENTS}.{use.rank}",
                             use, options)
                if use.input_rank is not None:
                    _oi_document(attrs, f"{RerankerAttributes.RERANKER_INPUT_DOCUMENTS}."
                                        f"{use.input_rank}", use, options, score=False)
            attrs.put(RerankerAttributes.RERANKER_TOP_K, len(reranked))
    if options.genai and run.kind.value == "retriever":
        attrs.put(GenAI.OPERATION_NAME, GenAI.RETRIEVAL)
        attrs.put(GenAI.RETRIEVAL_DOCUMENTS, [
            {"id": use.document_id, **({"score": use.score} if use.score is not None else {})}
            for use in retrieved])
        if options.include_content and isinstance(run.inputs, (str, Mapping)):
            query = run.inputs if isinstance(run.inputs, str) else run.inputs.get("query")
            if isinstance(query, str):
                attrs.put(GenAI.RETRIEVAL_QUERY_TEXT, query)


def _oi_document(attrs: _Attrs, prefix: str, use: DocumentUse, options: SpanOptions,
                 *, score: bool = True) -> None:
    attrs.put(f"{prefix}.{DocumentAttributes.DOCUMENT_ID}", use.document_id)
    if score:
        attrs.put(f"{prefix}.{DocumentAttributes.DOCUMENT_SCORE}", use.score)
    if options.include_content:
        attrs.put(f"{prefix}.{DocumentAttributes.DOCUMENT_CONTENT}", use.content)
    if use.metadata:
        attrs.put(f"{prefix}.{DocumentAttributes.DOCUMENT_METADATA}", use.metadata)


