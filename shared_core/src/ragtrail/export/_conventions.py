"""Attribute names of the conventions the OpenTelemetry export writes, in one place.

OpenInference names come from ``openinference-semantic-conventions`` itself. The GenAI
names are those of the OpenTelemetry GenAI semantic conventions (development status,
semconv 1.37 and later; the ``opentelemetry-semantic-conventions`` package now marks
them as moved to their own repository, so they are spelled here once).
"""

from __future__ import annotations

from openinference.semconv.trace import (
    DocumentAttributes,
    MessageAttributes,
    OpenInferenceSpanKindValues,
    RerankerAttributes,
    SpanAttributes,
    ToolAttributes,
    ToolCallAttributes,
)
from openinference.semconv.version import __version__ as OPENINFERENCE_VERSION

__all__ = [
    "CONVENTIONS",
    "GENAI_VERSION",
    "OI_KIND",
    "OPENINFERENCE_VERSION",
    "DocumentAttributes",
    "GenAI",
    "MessageAttributes",
    "RerankerAttributes",
    "SpanAttributes",
    "ToolAttributes",
    "ToolCallAttributes",
]

#: The conventions an exporter can write (both by default: receivers read different ones).
CONVENTIONS = ("genai", "openinference")
#: The GenAI semantic conventions version the names below follow.
GENAI_VERSION = "1.37.0"

#: ragtrail run kind -> OpenInference span kind.
OI_KIND = {
    "llm": OpenInferenceSpanKindValues.LLM.value,
    "retriever": OpenInferenceSpanKindValues.RETRIEVER.value,
    "reranker": OpenInferenceSpanKindValues.RERANKER.value,
    "embedding": OpenInferenceSpanKindValues.EMBEDDING.value,
    "tool": OpenInferenceSpanKindValues.TOOL.value,
    "agent": OpenInferenceSpanKindValues.AGENT.value,
    "evaluator": OpenInferenceSpanKindValues.EVALUATOR.value,
    "evaluation": OpenInferenceSpanKindValues.EVALUATOR.value,
}


class GenAI:
    """OpenTelemetry GenAI semantic convention attribute names and values."""

    OPERATION_NAME = "gen_ai.operation.name"
    PROVIDER_NAME = "gen_ai.provider.name"
    REQUEST_MODEL = "gen_ai.request.model"
    RESPONSE_MODEL = "gen_ai.response.model"
    RESPONSE_ID = "gen_ai.response.id"
    RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
    REQUEST_TEMPERATURE = "gen_ai.request.temperature"
    REQUEST_TOP_P = "gen_ai.request.top_p"
    REQUEST_TOP_K = "gen_ai.request.top_k"
    REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
    REQUEST_FREQUENCY_PENALTY = "gen_ai.request.frequency_penalty"
    REQUEST_PRESENCE_PENALTY = "gen_ai.request.presence_penalty"
    REQUEST_STOP_SEQUENCES = "gen_ai.request.stop_sequences"
    REQUEST_SEED = "gen_ai.request.seed"
    USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
    USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
    USAGE_CACHE_READ = "gen_ai.usage.cache_read.input_tokens"
    USAGE_CACHE_CREATION = "gen_ai.usage.cache_creation.input_tokens"
    USAGE_REASONING = "gen_ai.usage.reasoning.output_tokens"
    INPUT_MESSAGES = "gen_ai.input.messages"
    OUTPUT_MESSAGES = "gen_ai.output.messages"
    TOOL_DEFINITIONS = "gen_ai.tool.definitions"
    TOOL_NAME = "gen_ai.tool.name"
    TOOL_CALL_ID = "gen_ai.tool.call.id"
    TOOL_CALL_ARGUMENTS = "gen_ai.tool.call.arguments"
    TOOL_CALL_RESULT = "gen_ai.tool.call.result"
    AGENT_NAME = "gen_ai.agent.name"
    CONVERSATION_ID = "gen_ai.conversation.id"
    RETRIEVAL_QUERY_TEXT = "gen_ai.retrieval.query.text"
    RETRIEVAL_DOCUMENTS = "gen_ai.retrieval.documents"
    # gen_ai.operation.name values
    CHAT = "chat"
    TEXT_COMPLETION = "text_completion"
    EMBEDDINGS = "embeddings"
    RETRIEVAL = "retrieval"
    EXECUTE_TOOL = "execute_tool"
    INVOKE_AGENT = "invoke_agent"
    INVOKE_WORKFLOW = "invoke_workflow"
