"""Human-readable views of what ragtrail stored: lineage, trace trees, usage, diffs.

Used by the ``ragtrail`` CLI and the examples. Each function returns a rich
renderable; :func:`to_text` turns one into plain text (no colour codes).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from .query import DocumentUsage, Lineage, RunNode, TraceSummary, UsageRow
from .schemas import DocStage, LLMCallRecord, LLMMetadata, Run, RunStatus

__all__ = [
    "diff_rows",
    "documents_table",
    "format_cost",
    "format_ms",
    "lineage_view",
    "replay_spec",
    "to_text",
    "trace_tree",
    "traces_table",
    "usage_table",
]

_STATUS_STYLE = {RunStatus.OK: "green", RunStatus.ERROR: "bold red",
                 RunStatus.CANCELLED: "yellow", RunStatus.ABANDONED: "magenta"}


def format_cost(cost: Decimal | None, unpriced: int = 0) -> str:
    """``$0.000123``; ``unknown`` when nothing was priced; notes unpriced calls."""
    text = "unknown" if cost is None else f"${cost:.6f}"
    return f"{text} (+{unpriced} unpriced)" if unpriced and cost is not None else text


def format_ms(ms: float | None) -> str:
    """Milliseconds as ``12.3 ms`` or ``1.52 s``."""
    if ms is None:
        return "-"
    return f"{ms:.1f} ms" if ms < 1000 else f"{ms / 1000:.2f} s"


def _short(text: Any, limit: int = 100) -> str:
    if text is None:
        return "-"
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def to_text(renderable: RenderableType, width: int = 110) -> str:
    """Render to plain text (no colour), e.g. for files, tests and pipes."""
    buffer = io.StringIO()
    Console(file=buffer, width=width, no_color=True, color_system=None,
            force_terminal=False, highlight=False).print(renderable)
    return buffer.getvalue()


# -- trees -------------------------------------------------------------------------


def _llm_by_run(lineage: Lineage) -> dict[str, LLMMetadata]:
    return {call.run_id: call.metadata for call in lineage.llm_calls}


def _run_label(run: Run, llm: LLMMetadata | None) -> Text:
    label = Text()
    label.append(f"{run.kind.value} ", style="bold cyan")
    label.append(run.name or "-", style="bold")
    label.append(f"  {format_ms(run.duration_ms)}  ")
    label.append(run.status.value, style=_STATUS_STYLE.get(run.status, ""))
    if run.error is not None:
        label.append(f"  {run.error.type}: {_short(run.error.message, 80)}", style="red")
    if llm is not None:
        usage = llm.token_usage
        cost = llm.cost_metrics
        label.append(f"  model={llm.provider_model or '-'}")
        if usage is not None and usage.total_tokens is not None:
            label.append(f" tokens={usage.input_tokens}+{usage.output_tokens}")
        label.append(f" cost={format_cost(cost.total_cost if cost else None)}")
    return label


def trace_tree(lineage: Lineage) -> Tree:
    """The trace as a tree: kind, name, duration, status; LLM calls; documents per run."""
    llm = _llm_by_run(lineage)
    docs: dict[str, list[Any]] = {}
    for use in lineage.documents:
        docs.setdefault(use.run_id, []).append(use)
    tree = Tree(Text(f"trace {lineage.trace_id}", style="bold"))

    def add(node: RunNode, parent: Tree) -> None:
        branch = parent.add(_run_label(node.run, llm.get(node.run.id)))
        for use in docs.get(node.run.id, []):
            score = "-" if use.score is None else f"{use.score:.3f}"
            source = use.metadata.get("source") or use.document_id
            branch.add(Text(f"[{use.stage.value} #{use.rank}] score={score} {_short(source, 50)}"
                            f"  {_short(use.content, 60)}", style="dim"))
        for child in node.children:
            add(child, branch)

    for root in lineage.roots or ([lineage.tree] if lineage.tree else []):
        add(root, tree)
    if lineage.evaluations:
        from .evals._report import evaluation_line

        judged = tree.add(Text("evaluations", style="bold"))
        for evaluation in lineage.evaluations:
            judged.add(evaluation_line(evaluation))
    return tree


# -- lineage -------------------------------------------------------------------------


def _main_llm_call(lineage: Lineage) -> LLMCallRecord | None:
    return lineage.llm_calls[-1] if lineage.llm_calls else None


def lineage_view(lineage: Lineage) -> Group:
    """What produced this answer: question, documents by stage, prompt, model, cost, answer."""
    parts: list[RenderableType] = [
        Text.assemble(("Trace ", "bold"), lineage.trace_id),
        Text.assemble(("Question: ", "bold"), _short(lineage.question, 300)),
    ]
    for stage in DocStage:
        uses = lineage.documents_at(stage)
        if not uses:
            continue
        table = Table(title=f"Documents {stage.value}", title_justify="left", expand=False)
        for col in ("rank", "score", "input rank", "document", "source", "content"):
            table.add_column(col)
        for use in uses:
            table.add_row(str(use.rank), "-" if use.score is None else f"{use.score:.4f}",
                          "-" if use.input_rank is None else str(use.input_rank),
                          _short(use.document_id, 24), _short(use.metadata.get("source"), 24),
                          _short(use.content, 60))
        parts.append(table)
    for call in lineage.llm_calls:
        parts.append(_llm_table(call))
    parts.append(Text.assemble(("Total: ", "bold"), f"{lineage.total_tokens} tokens, ",
                               format_cost(lineage.total_cost, lineage.unpriced_calls)))
    parts.append(Text.assemble(("Answer: ", "bold"), _short(lineage.answer, 600)))
    if lineage.evaluations:
        from .evals._report import evaluations_table

        parts.append(evaluations_table(lineage.evaluations))
    return Group(*parts)


def _llm_table(call: LLMCallRecord) -> Table:
    meta = call.metadata
    table = Table(title=f"LLM call {call.run_id}", title_justify="left", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    params = meta.request_parameters.dump() if meta.request_parameters else {}
    usage = meta.token_usage
    cost = meta.cost_metrics
    perf = meta.performance_metrics
    response = meta.response_metadata
    rows = [
        ("model", f"{meta.provider or '-'} / {meta.provider_model or '-'}"),
        ("parameters", json.dumps(params, sort_keys=True) if params else "-"),
        ("template", _short(meta.prompt_template, 100)),
        ("template hash", (meta.prompt_template_hash or "-")[:16]),
        ("variables", _short(json.dumps(meta.prompt_variables, default=str), 100)
         if meta.prompt_variables else "-"),
        ("tokens", "unknown" if usage is None else
         f"in={usage.input_tokens} out={usage.output_tokens} total={usage.total_tokens} "
         f"cache_read={usage.cache_read_tokens} cache_write={usage.cache_creation_tokens} "
         f"reasoning={usage.reasoning_tokens}"),
        ("cost", f"{format_cost(cost.total_cost if cost else None)} "
                 f"({cost.price_status.value if cost and cost.price_status else '-'})"),
        ("latency", f"{format_ms(perf.total_duration_ms if perf else None)}, first token "
                    f"{format_ms(perf.time_to_first_token_ms if perf else None)}"),
        ("finish", f"{response.finish_reason if response else '-'}"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table


# -- tables ----------------------------------------------------------------------------


def traces_table(rows: Sequence[TraceSummary]) -> Table:
    """Recent traces: time, app, root name, status, duration, tokens, cost, question."""
    table = Table(title="Traces")
    for col in ("started (UTC)", "trace", "app", "name", "status", "duration", "tokens", "cost",
                "question"):
        table.add_column(col, overflow="fold" if col == "trace" else "ellipsis")
    for row in rows:
        table.add_row(row.started_at.strftime("%Y-%m-%d %H:%M:%S"), row.trace_id,
                      row.app_name or "-", row.name, row.status.value, format_ms(row.duration_ms),
                      str(row.total_tokens), format_cost(row.total_cost, row.unpriced_calls),
                      _short(row.question, 40))
    return table


def documents_table(rows: Sequence[DocumentUsage]) -> Table:
    """Answers that used a document, with the stage it reached."""
    table = Table(title="Answers using the document")
    for col in ("started (UTC)", "trace", "stage", "rank", "score", "question", "answer"):
        table.add_column(col, overflow="fold" if col == "trace" else "ellipsis")
    for row in rows:
        table.add_row(row.started_at.strftime("%Y-%m-%d %H:%M:%S") if row.started_at else "-",
                      row.trace_id, row.stage.value, str(row.rank),
                      "-" if row.score is None else f"{row.score:.4f}",
                      _short(row.question, 40), _short(row.answer, 40))
    return table


def usage_table(rows: Sequence[UsageRow], group_by: Sequence[str]) -> Table:
    """Tokens and cost per group; unpriced calls in their own column, never as $0."""
    table = Table(title=f"Usage by {', '.join(group_by)}")
    for key in group_by:
        table.add_column(key)
    for col in ("calls", "input", "output", "total", "cache read", "reasoning", "cost",
                "unpriced calls"):
        table.add_column(col, justify="right")
    for row in rows:
        table.add_row(*[str(row.group.get(k) if row.group.get(k) is not None else "-")
                        for k in group_by],
                      str(row.calls), str(row.input_tokens), str(row.output_tokens),
                      str(row.total_tokens), str(row.cache_read_tokens),
                      str(row.reasoning_tokens), format_cost(row.total_cost),
                      str(row.unpriced_calls))
    return table


# -- diff and replay -------------------------------------------------------------------


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


def diff_table(rows: Iterable[dict[str, Any]], a_id: str, b_id: str) -> Table:
    """The rows of :func:`diff_rows` as a table, differences marked."""
    table = Table(title="Diff")
    table.add_column("")
    table.add_column("field", style="bold")
    table.add_column(f"A {a_id[:12]}")
    table.add_column(f"B {b_id[:12]}")
    for row in rows:
        mark = " " if row["same"] else "≠"
        style = "" if row["same"] else "yellow"
        table.add_row(mark, row["field"], _short(_plain(row["a"]), 60),
                      _short(_plain(row["b"]), 60), style=style)
    return table


def _plain(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


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
    return spec
