"""Small guarded extractors: LlamaIndex objects to plain data the Recorder can keep.

Each one that fails costs its field, never the run, and never raises into the
application (``guarded`` logs and counts the failure).

Documents: a node is stored with its **node id** as ``document_id`` (the id LlamaIndex
shows for a retrieved chunk) and the id of the document it was cut from
(``ref_doc_id``) in its metadata; the content hash is of the node's text without
metadata (``MetadataMode.NONE``).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from llama_index.core.schema import MetadataMode, TextNode

from ragtrail.capture import DocumentInput, guarded
from ragtrail.conventions import tool_call_list, tool_definitions
from ragtrail.schemas import content_hash

__all__ = [
    "NodeRef",
    "arguments_of",
    "document_inputs",
    "message_dicts",
    "node_refs",
    "plain",
    "query_text",
    "response_output",
    "tool_calls_of",
    "tool_definitions_of",
    "tool_output_nodes",
]

#: Metadata key holding the id of the source document a node was cut from.
REF_DOC_ID_KEY = "ref_doc_id"
_MAX_PLAIN_DEPTH = 6
_MAX_PLAIN_ITEMS = 200


@dataclass(frozen=True)
class NodeRef:
    """A node as seen at one moment: id, text hash, score (scores get mutated later)."""

    node_id: str
    content_hash: str
    score: float | None

    @property
    def key(self) -> tuple[str, str]:
        """What identifies the node for reranking: the same node with the same text."""
        return (self.node_id, self.content_hash)

    def as_dict(self) -> dict[str, Any]:
        """The form stored in run inputs and outputs."""
        return {"node_id": self.node_id, "score": self.score}


@guarded(default={})
def arguments_of(bound_args: inspect.BoundArguments | None) -> dict[str, Any]:
    """The call's arguments by name: ``self`` left out, ``**kwargs`` flattened.

    LlamaIndex's LLM callback wrappers take ``(_self, *args, **kwargs)``: the first
    positional argument of such a call is kept as ``prompt``.
    """
    if bound_args is None:
        return {}
    found: dict[str, Any] = {}
    params = bound_args.signature.parameters
    for name, value in bound_args.arguments.items():
        if name in ("self", "_self"):
            continue
        kind = params[name].kind if name in params else None
        if kind is inspect.Parameter.VAR_KEYWORD:
            found.update(value)
        elif kind is inspect.Parameter.VAR_POSITIONAL:
            if value and "prompt" not in bound_args.arguments.get("kwargs", {}):
                found.setdefault("prompt", value[0])
            if len(value) > 1:
                found["args"] = list(value[1:])
        else:
            found[name] = value
    return found


def _node_of(item: Any) -> Any:
    return getattr(item, "node", item)


def node_text(node: Any) -> str:
    """The node's text without metadata (what the content hash is taken of)."""
    text: Any
    if type(node) is TextNode:  # its get_content(NONE) is its text, after formatting metadata
        text = node.text
        return text if isinstance(text, str) else str(text or "")
    try:
        text = node.get_content(metadata_mode=MetadataMode.NONE)
    except Exception:
        text = getattr(node, "text", None)
    return text if isinstance(text, str) else str(text or "")


def _score(item: Any) -> float | None:
    value = getattr(item, "score", None)
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


@guarded(default=[])
def node_refs(items: Iterable[Any] | None) -> list[NodeRef]:
    """Snapshot of ``NodeWithScore`` (or node) items: ids, text hashes, scores."""
    refs = []
    for item in items or ():
        node = _node_of(item)
        node_id = getattr(node, "node_id", None) or getattr(node, "id_", None)
        text = node_text(node)
        refs.append(NodeRef(str(node_id) if node_id else content_hash(text),
                            content_hash(text), _score(item)))
    return refs


@guarded(default=None)
def _document_input(item: Any, input_rank: int | None) -> DocumentInput:
    node = _node_of(item)
    metadata = dict(getattr(node, "metadata", None) or {})
    ref_doc_id = getattr(node, "ref_doc_id", None)
    if ref_doc_id is not None:
        metadata[REF_DOC_ID_KEY] = ref_doc_id
    node_id = getattr(node, "node_id", None)
    return DocumentInput(text=node_text(node), document_id=str(node_id) if node_id else None,
                         metadata=metadata, score=_score(item), input_rank=input_rank)


def document_inputs(
    items: Sequence[Any] | None, input_ranks: Sequence[int | None] | None = None
) -> list[DocumentInput]:
    """Nodes as ragtrail documents, in the order given (the rank)."""
    docs = []
    for position, item in enumerate(items or ()):
        rank = input_ranks[position] if input_ranks is not None else None
        doc = _document_input(item, rank)
        if doc is not None:
            docs.append(doc)
    return docs


@guarded(default=None)
def query_text(value: Any) -> str | None:
    """The text of a query given as a string or a ``QueryBundle``."""
    if value is None or isinstance(value, str):
        return value
    text = getattr(value, "query_str", None)
    return text if isinstance(text, str) else str(value)


@guarded(default=None)
def tool_calls_of(message: Any) -> list[Any] | None:
    """Tool calls a chat message asks for (tool-call blocks or OpenAI-style kwargs)."""
    calls: list[Any] = [
        {"id": getattr(b, "tool_call_id", None), "name": getattr(b, "tool_name", None),
         "arguments": plain(getattr(b, "tool_kwargs", None))}
        for b in getattr(message, "blocks", None) or ()
        if getattr(b, "block_type", None) == "tool_call"
    ]
    extra = getattr(message, "additional_kwargs", None) or {}
    if not calls and extra.get("tool_calls"):
        calls = plain(extra["tool_calls"]) or []
    return tool_call_list(calls)


def tool_definitions_of(tools: Any) -> list[dict[str, Any]] | None:
    """Tool definitions offered to a model: LlamaIndex tools (their metadata) or the
    provider-shaped dicts an LLM integration built from them, in the canonical shape."""
    if not isinstance(tools, (list, tuple)):
        return None
    raw = [_tool_spec(tool) for tool in tools]
    return tool_definitions([spec for spec in raw if spec is not None])


def _tool_spec(tool: Any) -> Any:
    if isinstance(tool, Mapping):
        return tool
    metadata: Any = getattr(tool, "metadata", None)
    name = getattr(metadata, "name", None)
    if not isinstance(name, str):
        return None
    parameters = metadata.get_parameters_dict() if hasattr(metadata, "fn_schema") else None
    return {"name": name, "description": getattr(metadata, "description", None),
            "parameters": parameters}


def tool_output_nodes(output: Any) -> list[Any] | None:
    """The nodes a tool returned: its raw output when that is a node, a
    ``NodeWithScore`` or a list of them, or the ``source_nodes`` of the response it
    returned (``QueryEngineTool``). None when it returned no nodes."""
    raw = getattr(output, "raw_output", output)
    sources = getattr(raw, "source_nodes", None)
    if isinstance(sources, list) and sources:
        return sources
    items = raw if isinstance(raw, (list, tuple)) else [raw]
    nodes = [item for item in items if _is_node(item)]
    return nodes if nodes and len(nodes) == len(items) else None


def _is_node(item: Any) -> bool:
    from llama_index.core.schema import BaseNode, NodeWithScore

    return isinstance(item, (BaseNode, NodeWithScore))


@guarded(default=None)
def message_dict(message: Any) -> dict[str, Any] | None:
    """A ``ChatMessage`` as ``{role, content, ...}``."""
    role = getattr(message, "role", None)
    role = getattr(role, "value", role)
    content = getattr(message, "content", None)
    found: dict[str, Any] = {"role": str(role) if role is not None else "user",
                             "content": content if isinstance(content, str) else ""}
    kinds = [getattr(b, "block_type", type(b).__name__) for b in getattr(message, "blocks", ())]
    if any(kind != "text" for kind in kinds):
        found["block_types"] = kinds
    calls = tool_calls_of(message)
    if calls:
        found["tool_calls"] = calls
    extra = getattr(message, "additional_kwargs", None) or {}
    call_id = extra.get("tool_call_id") if isinstance(extra, Mapping) else None
    if call_id is not None:
        found["tool_call_id"] = str(call_id)
    name = extra.get("name") if isinstance(extra, Mapping) else None
    if call_id is not None and isinstance(name, str):
        found["name"] = name  # the tool that answered
    return found


def message_dicts(messages: Iterable[Any] | None) -> list[dict[str, Any]]:
    """Chat messages as plain dicts (unreadable ones left out)."""
    converted = (message_dict(m) for m in messages or ())
    return [m for m in converted if m is not None]


@guarded(default=None)
def response_output(response: Any) -> Any:
    """A query, chat or synthesis result as ``{response, source_nodes, ...}``."""
    if response is None or isinstance(response, str):
        return {"response": response}
    found: dict[str, Any] = {}
    text = getattr(response, "response", None)
    if text is None:
        text = getattr(response, "response_txt", None)
    if text is not None:
        found["response"] = text if isinstance(text, str) else plain(text)
    sources = getattr(response, "source_nodes", None)
    if sources:
        found["source_nodes"] = [ref.as_dict() for ref in node_refs(sources)]
    tools = getattr(response, "sources", None)
    if tools:
        found["tools"] = [getattr(t, "tool_name", None) for t in tools]
    return found or plain(response)


@guarded(default=None)
def plain(value: Any) -> Any:
    """Plain data for known LlamaIndex values; other objects become their type name.

    Deliberately narrow: a component object (an LLM, an index) must not be dumped
    field by field into a run, where it would be large and could carry credentials.
    User-defined pydantic models (structured outputs, events) are dumped.
    """
    return _plain(value, 0)


def _plain(value: Any, depth: int) -> Any:
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if depth >= _MAX_PLAIN_DEPTH:
        return f"<{type(value).__name__}>"
    if isinstance(value, Mapping):
        items = list(value.items())[:_MAX_PLAIN_ITEMS]
        return {str(k): _plain(v, depth + 1) for k, v in items}
    if isinstance(value, (list, tuple)):
        return [_plain(v, depth + 1) for v in value[:_MAX_PLAIN_ITEMS]]
    return _plain_object(value, depth)


def _plain_object(value: Any, depth: int) -> Any:
    if hasattr(value, "query_str"):
        return query_text(value)
    if hasattr(value, "node") and hasattr(value, "score"):
        refs = node_refs([value])
        return refs[0].as_dict() if refs else None
    if hasattr(value, "role") and hasattr(value, "blocks"):
        return message_dict(value)
    if hasattr(value, "source_nodes"):
        return response_output(value)
    content = getattr(value, "content", None)
    if isinstance(content, str) and hasattr(value, "tool_name"):
        return content  # ToolOutput
    dump = getattr(value, "model_dump", None)
    if callable(dump) and not type(value).__module__.startswith("llama_index"):
        return _plain(dump(mode="json"), depth + 1)
    return f"<{type(value).__name__}>"
