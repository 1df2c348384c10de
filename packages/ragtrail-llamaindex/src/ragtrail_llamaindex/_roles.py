"""Which LlamaIndex spans become ragtrail runs, and of which kind.

LlamaIndex opens a dispatcher span for every public method and most private ones
(``RetrieverQueryEngine.query`` -> ``._query`` -> ``VectorIndexRetriever.retrieve`` ->
``._retrieve`` -> ...). An audit trail wants the steps a user reasons about, so only
the spans listed here become runs; the others are transparent and their children
attach to the nearest recorded ancestor.
"""

from __future__ import annotations

import enum
import functools
import re
from dataclasses import dataclass
from typing import Any

from ragtrail.schemas import RunKind

__all__ = ["Family", "Role", "classify", "span_name", "starts_ingestion"]

_UUID_CHARS = 36  # str(uuid.uuid4())


class Family(enum.Enum):
    """What a recorded span is, as the adapter needs to know it."""

    QUERY = "query"
    CHAT = "chat"
    RETRIEVER = "retriever"
    POSTPROCESSOR = "postprocessor"
    SYNTHESIZER = "synthesizer"
    LLM = "llm"
    LLM_WRAPPER = "llm_wrapper"
    EMBEDDING = "embedding"
    TOOL = "tool"
    WORKFLOW = "workflow"
    STEP = "step"
    RERANK_EVENT = "rerank_event"
    INGESTION = "ingestion"
    TRANSFORM = "transform"


@dataclass(frozen=True)
class Role:
    """A recorded span: its family, its ragtrail kind and its name."""

    family: Family
    kind: RunKind
    name: str


_QUERY_METHODS = frozenset({"query", "aquery"})
_CHAT_METHODS = frozenset({"chat", "achat", "stream_chat", "astream_chat"})
_RETRIEVE_METHODS = frozenset({"retrieve", "aretrieve"})
_POSTPROCESS_METHODS = frozenset(
    {"postprocess_nodes", "_postprocess_nodes", "apostprocess_nodes", "_apostprocess_nodes"}
)
_SYNTHESIZE_METHODS = frozenset({"synthesize", "asynthesize"})
#: Calls that reach the model: one run of kind ``llm`` each.
LLM_CALL_METHODS = frozenset(
    {"chat", "achat", "stream_chat", "astream_chat",
     "complete", "acomplete", "stream_complete", "astream_complete"}
)
#: Calls that format a prompt and then make one of the calls above: a ``chain`` run.
_LLM_WRAPPER_METHODS = frozenset(
    {"predict", "apredict", "stream", "astream",
     "structured_predict", "astructured_predict",
     "stream_structured_predict", "astream_structured_predict",
     "predict_and_call", "apredict_and_call",
     "chat_with_tools", "achat_with_tools", "stream_chat_with_tools", "astream_chat_with_tools"}
)
_EMBED_METHODS = frozenset(
    {"get_query_embedding", "aget_query_embedding", "get_text_embedding", "aget_text_embedding",
     "get_text_embedding_batch", "aget_text_embedding_batch",
     "get_agg_embedding_from_queries", "aget_agg_embedding_from_queries"}
)
_TOOL_METHODS = frozenset({"call", "acall", "__call__"})
_INGESTION_METHODS = frozenset({"run", "arun"})
#: A transformation applied to nodes: a splitter, an extractor, an embedding model.
#: ``IngestionPipeline.arun`` calls ``acall``, which LlamaIndex gives no span: there
#: the node parser's ``_parse_nodes`` and the extractor's ``aextract`` are the steps
#: (under ``__call__`` they are the same call, folded into its run).
_TRANSFORM_METHODS = frozenset({"__call__", "acall", "_parse_nodes", "aextract"})
_INGESTION_FAMILIES = frozenset({Family.INGESTION, Family.TRANSFORM})
_INDEXING_EMBEDS = frozenset({"get_text_embedding", "aget_text_embedding",
                              "get_text_embedding_batch", "aget_text_embedding_batch"})


def starts_ingestion(role: Role) -> bool:
    """Whether a trace this run starts is ingestion work (``request_type``): a pipeline,
    a transformation, or texts embedded for an index (queries embed with
    ``get_query_embedding``)."""
    if role.family in _INGESTION_FAMILIES:
        return True
    return role.family is Family.EMBEDDING and role.name.rpartition(".")[2] in _INDEXING_EMBEDS


def span_name(span_id: str) -> str:
    """LlamaIndex's own name of a span: its id without the ``-<uuid4>`` suffix."""
    cut = len(span_id) - _UUID_CHARS - 1
    if cut > 0 and span_id[cut] == "-" and _is_uuid(span_id[cut + 1 :]):
        return span_id[:cut]
    return span_id


_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def _is_uuid(text: str) -> bool:
    """``text`` is a UUID as ``str(uuid4())`` spells it (a regex: no UUID object)."""
    return _UUID.fullmatch(text) is not None


@functools.lru_cache(maxsize=1)
def _bases() -> tuple[tuple[type, Family, frozenset[str]], ...]:
    """LlamaIndex base classes, imported once, in the order they are tried."""
    from llama_index.core.base.base_query_engine import BaseQueryEngine
    from llama_index.core.base.base_retriever import BaseRetriever
    from llama_index.core.base.embeddings.base import BaseEmbedding
    from llama_index.core.base.llms.base import BaseLLM
    from llama_index.core.chat_engine.types import BaseChatEngine
    from llama_index.core.ingestion import IngestionPipeline
    from llama_index.core.postprocessor.types import BaseNodePostprocessor
    from llama_index.core.response_synthesizers.base import BaseSynthesizer
    from llama_index.core.schema import TransformComponent
    from llama_index.core.tools.types import BaseTool

    table: list[tuple[type, Family, frozenset[str]]] = [
        (BaseQueryEngine, Family.QUERY, _QUERY_METHODS),
        (BaseChatEngine, Family.CHAT, _CHAT_METHODS),
        (BaseRetriever, Family.RETRIEVER, _RETRIEVE_METHODS),
        (BaseNodePostprocessor, Family.POSTPROCESSOR, _POSTPROCESS_METHODS),
        (BaseSynthesizer, Family.SYNTHESIZER, _SYNTHESIZE_METHODS),
        (BaseLLM, Family.LLM, LLM_CALL_METHODS),
        (BaseLLM, Family.LLM_WRAPPER, _LLM_WRAPPER_METHODS),
        (BaseEmbedding, Family.EMBEDDING, _EMBED_METHODS),
        (BaseTool, Family.TOOL, _TOOL_METHODS),
        (IngestionPipeline, Family.INGESTION, _INGESTION_METHODS),
        (TransformComponent, Family.TRANSFORM, _TRANSFORM_METHODS),
    ]
    try:
        from llama_index.core.multi_modal_llms.base import MultiModalLLM

        table.append((MultiModalLLM, Family.LLM, LLM_CALL_METHODS))
    except ImportError:  # pragma: no cover - removed in some versions
        pass
    return tuple(table)


@functools.lru_cache(maxsize=1)
def _workflow_class() -> type | None:
    try:
        from llama_index.core.workflow import Workflow
    except ImportError:  # pragma: no cover - very old llama-index-core
        return None
    return Workflow


_KINDS = {
    Family.RETRIEVER: RunKind.RETRIEVER,
    Family.LLM: RunKind.LLM,
    Family.EMBEDDING: RunKind.EMBEDDING,
    Family.TOOL: RunKind.TOOL,
}


def classify(span_id: str, instance: Any, parent_family: Family | None) -> Role | None:
    """The role of a span, or None when it is an implementation detail.

    ``parent_family`` is the family of the span's direct parent when that parent is
    recorded: workflow steps (plain functions, no instance) are recognised by it.
    """
    name = span_name(span_id)
    method = name.rpartition(".")[2]
    if instance is None:
        if parent_family is Family.WORKFLOW:
            return Role(Family.STEP, RunKind.CHAIN, name)
        return None
    for base, family, methods in _bases():
        if method in methods and isinstance(instance, base):
            if family is Family.TOOL:
                name = _tool_name(instance) or name
            return Role(family, _KINDS.get(family, RunKind.CHAIN), name)
    workflow = _workflow_class()
    if workflow is not None and method == "run" and isinstance(instance, workflow):
        # Agents, multi-agent workflows and custom workflows alike: a workflow decides
        # its own next steps, which is what ragtrail's ``agent`` kind means.
        return Role(Family.WORKFLOW, RunKind.AGENT, name)
    return None


def _tool_name(tool: Any) -> str | None:
    """The tool's own name (what the model calls it), not ``FunctionTool.acall``."""
    try:
        name = tool.metadata.name
    except Exception:  # a tool whose metadata cannot be read keeps its span name
        return None
    return name if isinstance(name, str) and name else None
