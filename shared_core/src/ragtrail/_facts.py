"""What ``ragtrail diff`` and ``ragtrail replay`` report, as plain data (no rendering):
the JSON output of those commands, and what :mod:`ragtrail.report` lays out."""

from __future__ import annotations

from typing import Any

from .query import Lineage
from .schemas import DocStage, LLMCallRecord, LLMMetadata

__all__ = ["diff_rows", "replay_spec"]


def _main_llm_call(lineage: Lineage) -> LLMCallRecord | None:
    return lineage.llm_calls[-1] if lineage.llm_calls else None


def _facts(lineage: Lineage) -> dict[str, Any]:
    call = _main_llm_call(lineage)
    meta = call.metadata if call else LLMMetadata()
    retrieved = [u.document_id for u in lineage.documents_at(DocStage.RETRIEVED)]
    in_prompt = [u.document_id for u in lineage.documents_at(DocStage.IN_PROMPT)]
    root = lineage.root
    return {
        "model": meta.provider_model,
        "model version": meta.response_metadata.model_version if meta.response_metadata else None,
        "parameters": meta.request_parameters.dump() if meta.request_parameters else None,
        "prompt template hash": meta.prompt_template_hash,
        "prompt template": meta.prompt_template,
        "documents retrieved (in order)": retrieved,
        "retrieval scores": [u.score for u in lineage.documents_at(DocStage.RETRIEVED)],
        "documents in prompt": in_prompt,
        "tokens": lineage.total_tokens,
        "cost": lineage.total_cost,
        "latency": root.duration_ms if root else None,
        "question": lineage.question,
        "answer": lineage.answer,
    }


def diff_rows(a: Lineage, b: Lineage) -> list[dict[str, Any]]:
    """Field-by-field comparison of two traces: ``{field, a, b, same}`` per row."""
    fa, fb = _facts(a), _facts(b)
    return [{"field": key, "a": fa[key], "b": fb[key], "same": fa[key] == fb[key]} for key in fa]


def replay_spec(call: LLMCallRecord) -> dict[str, Any]:
    """What is needed to re-issue an LLM call exactly: provider, model, parameters, prompt."""
    meta = call.metadata
    params = meta.request_parameters.dump() if meta.request_parameters else {}
    params.pop("model", None)
    spec: dict[str, Any] = {
        "run_id": call.run_id,
        "provider": meta.provider,
        "model": meta.provider_model or (meta.request_parameters.model
                                         if meta.request_parameters else None),
        "parameters": params,
    }
    if meta.messages is not None:
        spec["messages"] = meta.messages
    if meta.prompt_text is not None:
        spec["prompt"] = meta.prompt_text
    if meta.prompt_template is not None:
        spec["prompt_template"] = meta.prompt_template
        spec["prompt_variables"] = meta.prompt_variables
    if meta.tools is not None:
        spec["tools"] = meta.tools
    if meta.tool_choice is not None:
        spec["tool_choice"] = meta.tool_choice
    return spec
