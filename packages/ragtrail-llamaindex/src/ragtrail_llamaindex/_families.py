"""What each recorded family keeps: inputs at start, outputs at end, extra metadata."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ragtrail.capture import LLMUpdate, guarded
from ragtrail.schemas import ROLE_KEY, StepRole, content_hash

from ._extract import NodeRef, message_dicts, node_refs, plain, query_text, response_output
from ._llm import model_of
from ._roles import Family

__all__ = ["inputs_of", "outputs_of", "reranker_info", "start_metadata",
           "template_of"]

_QUERY_ARGS = ("str_or_query_bundle", "query_bundle", "query", "query_str")


def _query(arguments: Mapping[str, Any]) -> str | None:
    for name in _QUERY_ARGS:
        if arguments.get(name) is not None:
            text: str | None = query_text(arguments[name])
            return text
    return None


def _refs(items: Any, refs: list[NodeRef] | None = None) -> list[dict[str, Any]]:
    return [ref.as_dict() for ref in (node_refs(items) if refs is None else refs)]


def inputs_of(family: Family, arguments: Mapping[str, Any],
              refs: list[NodeRef] | None = None) -> Any:
    """A run's inputs, from the call's arguments (``refs``: its nodes' refs, when they
    were taken already)."""
    if family in (Family.QUERY, Family.RETRIEVER):
        return {"query": _query(arguments)}
    if family is Family.CHAT:
        return {"message": plain(arguments.get("message"))}
    if family in (Family.POSTPROCESSOR, Family.SYNTHESIZER):
        return {"query": _query(arguments), "nodes": _refs(arguments.get("nodes"), refs)}
    if family is Family.LLM:
        if "messages" in arguments:
            return {"messages": message_dicts(arguments["messages"])}
        return {"prompt": plain(arguments.get("prompt"))}
    if family is Family.LLM_WRAPPER:
        return {k: plain(v) for k, v in arguments.items() if k not in ("prompt", "output_cls")}
    if family is Family.WORKFLOW:
        return _workflow_input(arguments.get("start_event"))
    if family is Family.INGESTION:
        return {"documents": _count(arguments.get("documents")),
                "nodes": _count(arguments.get("nodes"))}
    if family is Family.TRANSFORM:
        return {"nodes": _count(arguments.get("nodes"))}
    return plain(dict(arguments))


def _count(items: Any) -> int | None:
    """How many documents or nodes (an ingestion's are too many to store one by one)."""
    try:
        return len(items) if items is not None else None
    except TypeError:
        return None


def _workflow_input(event: Any) -> Any:
    message = getattr(event, "user_msg", None)
    if message is not None:
        return {"input": plain(message)}
    try:
        return plain(dict(event))
    except TypeError:
        return plain(event)


def outputs_of(family: Family, result: Any, refs: list[NodeRef] | None = None) -> Any:
    """A run's outputs, from what the call returned (non-streaming; ``refs``: the refs
    of the nodes it returned, when they were taken already)."""
    if family in (Family.QUERY, Family.CHAT, Family.SYNTHESIZER):
        return response_output(result)
    if family in (Family.RETRIEVER, Family.POSTPROCESSOR, Family.RERANK_EVENT):
        return {"nodes": _refs(result, refs)}
    if family is Family.EMBEDDING:
        return _embedding_output(result)
    if family is Family.WORKFLOW:
        value = getattr(result, "result", result)
        message = getattr(value, "response", None)
        content = getattr(message, "content", None)
        return {"output": content if isinstance(content, str) else plain(value)}
    if family is Family.STEP:
        return {"event": type(result).__name__}
    if family in (Family.INGESTION, Family.TRANSFORM):
        return {"nodes": _count(result)}
    return {"output": plain(result)}


def _embedding_output(result: Any) -> dict[str, Any]:
    if isinstance(result, list) and result and isinstance(result[0], list):
        return {"embeddings": len(result), "dimensions": len(result[0])}
    if isinstance(result, list):
        return {"embeddings": 1, "dimensions": len(result)}
    return {"output": plain(result)}


def start_metadata(family: Family, instance: Any) -> dict[str, Any]:
    """Metadata known at start: the component's class, model, tool name, ..."""
    meta: dict[str, Any] = {"llamaindex_class": type(instance).__name__} if instance else {}
    if family is Family.EMBEDDING:
        name = getattr(instance, "model_name", None)
        if isinstance(name, str):
            meta["model_name"] = name
    elif family is Family.TOOL:
        tool = getattr(instance, "metadata", None)
        meta["tool_name"] = getattr(tool, "name", None)
        meta["tool_description"] = getattr(tool, "description", None)
    elif family is Family.POSTPROCESSOR:
        info = reranker_info(instance)
        meta.update(info)
        # Whatever it does with them, a postprocessor's own LLM calls see candidates,
        # not the answer's prompt (the Recorder's in-prompt rule reads this).
        meta[ROLE_KEY] = (StepRole.RERANKER if "top_n" in info else StepRole.FILTER).value
    elif family is Family.INGESTION:
        steps = getattr(instance, "transformations", None) or ()
        meta["transformations"] = [type(step).__name__ for step in steps]
    return {k: v for k, v in meta.items() if v is not None}


@guarded(default={})
def reranker_info(instance: Any) -> dict[str, Any]:
    """Model name and top_n of a reranking postprocessor, where it has them."""
    info: dict[str, Any] = {}
    top_n = getattr(instance, "top_n", None)
    if isinstance(top_n, int) and not isinstance(top_n, bool):
        info["top_n"] = top_n
    for attr in ("model_name", "model"):
        value = getattr(instance, attr, None)
        if isinstance(value, str) and value:
            info["model_name"] = value
            break
    else:
        llm = getattr(instance, "llm", None)
        model = model_of(llm) if llm is not None else None
        if model:
            info["model_name"] = model
    return info


def template_of(instance: Any, arguments: Mapping[str, Any]) -> LLMUpdate | None:
    """Template, variables and template hash of a ``predict``-style call."""
    prompt = arguments.get("prompt")
    get_template = getattr(prompt, "get_template", None)
    if not callable(get_template):
        return None
    try:
        text = get_template(llm=instance)
    except TypeError:
        text = get_template()
    if not isinstance(text, str):
        return None
    variables = dict(getattr(prompt, "kwargs", None) or {})
    variables.update({k: v for k, v in arguments.items()
                      if k not in ("prompt", "output_cls", "llm_kwargs")})
    found = LLMUpdate(prompt_template=text, prompt_template_hash=content_hash(text),
                      prompt_variables={k: plain(v) for k, v in variables.items()})
    name = _prompt_type(prompt)
    if name is not None:
        found["prompt_template_name"] = name
    return found


def _prompt_type(prompt: Any) -> str | None:
    """LlamaIndex's name for a prompt: its ``prompt_type`` (``text_qa``, ``refine``, ...);
    None for ``custom``, the type of every template a user writes."""
    metadata = getattr(prompt, "metadata", None)
    kind = metadata.get("prompt_type") if isinstance(metadata, Mapping) else None
    value = getattr(kind, "value", kind)
    return value if isinstance(value, str) and value and value != "custom" else None
