"""Human-readable views of what ragtrail stored: lineage, trace trees, usage, diffs.

Used by the ``ragtrail`` CLI and the examples. Each function returns a rich
renderable; :func:`to_text` turns one into plain text (no colour codes).

Views fit the width they are rendered at (the terminal's, ``COLUMNS``): tables drop
their least important columns and shorten cells rather than wrap. Ids are never
wrapped or shortened, so they can be copied whole; a line grows past the width only
when an id alone does not fit. Ranks are shown 1-based (``#1`` is the top document);
the stored records and the Python API keep their 0-based ``rank``.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from rich import box
from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.measure import Measurement
from rich.segment import Segment
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from ._facts import diff_rows, replay_spec
from .query import DocumentUsage, Lineage, RunNode, TraceSummary, UsageRow
from .schemas import DocStage, LLMCallRecord, LLMMetadata, Run, RunStatus

__all__ = [
    "diff_rows",
    "documents_table",
    "format_cost",
    "format_ms",
    "id_line",
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
            force_terminal=False, highlight=False).print(renderable, crop=False)
    return buffer.getvalue()


def shown_rank(rank: int | None) -> str:
    """A stored 0-based rank as people read it: 1-based, ``-`` when there is none."""
    return "-" if rank is None else str(rank + 1)


# -- ids and fitted tables --------------------------------------------------------------


class IdLine:
    """``label`` then an id, on one line that is never wrapped or cut (copyable)."""

    def __init__(self, label: str, value: str, style: str = "bold") -> None:
        self.label, self.value, self.style = label, value, style

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield Segment(self.label, console.get_style(self.style))
        yield Segment(self.value)
        yield Segment.line()

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        width = cell_len(self.label) + cell_len(self.value)
        return Measurement(width, width)


def id_line(label: str, value: str) -> IdLine:
    """A line ``label value`` whose id is never wrapped (see :class:`IdLine`)."""
    return IdLine(label, value)


@dataclass
class _Column:
    header: str
    cells: list[str]
    #: 0: always shown; otherwise dropped first when the width is short, highest first.
    drop: int = 0
    #: An id: shown whole, never wrapped or cut.
    is_id: bool = False
    #: Narrowest useful width (cells are cut with an ellipsis down to it).
    least: int = 6
    #: A value that means nothing cut (a cost, a count, a score): shown whole, header
    #: included, or the column is left out.
    whole: bool = False
    justify: str = "left"
    style: str = ""
    #: Free text (a question, an answer): widened last, after every other column.
    flex: bool = False
    width: int = field(default=0, init=False)

    @property
    def natural(self) -> int:
        return max([cell_len(self.header), *(cell_len(c) for c in self.cells)])

    @property
    def minimum(self) -> int:
        return self.natural if self.is_id or self.whole else min(self.natural, self.least)


#: Width between two columns of a fitted table (collapsed padding and a rule).
_GAP = 2


class FitTable:
    """A table laid out for the width it is rendered at.

    Columns keep their natural width while they fit; otherwise cells are cut with an
    ellipsis down to each column's least width, then the least important columns are
    left out. Id columns and columns of whole values (costs, counts, scores) are never
    cut: they are shown whole or left out.
    """

    def __init__(self, title: str | None, columns: list[_Column],
                 row_styles: Sequence[str] | None = None) -> None:
        self.title, self.columns, self.row_styles = title, columns, row_styles

    def layout(self, width: int) -> list[_Column]:
        """The columns shown at ``width``, each with its ``width`` set."""
        shown = list(self.columns)

        def needed(cols: list[_Column]) -> int:
            return sum(c.minimum for c in cols) + _GAP * (len(cols) - 1)

        while needed(shown) > width and any(c.drop for c in shown):
            shown.remove(max((c for c in shown if c.drop), key=lambda c: c.drop))
        spare = width - needed(shown)
        for col in shown:
            col.width = col.minimum
        # Spare width goes to the most important columns first, up to their natural
        # width; free-text columns then share what is left.
        for col in sorted((c for c in shown if not c.flex), key=lambda c: c.drop):
            grow = max(0, min(spare, col.natural - col.width))
            col.width += grow
            spare -= grow
        flexible = [c for c in shown if c.flex]
        while spare > 0 and any(c.width < c.natural for c in flexible):
            for col in flexible:
                if spare > 0 and col.width < col.natural:
                    col.width += 1
                    spare -= 1
        return shown

    def table(self, width: int) -> tuple[Table, int]:
        """The rich Table for ``width``, and the width it takes."""
        table = Table(title=self.title, title_justify="left", box=box.SIMPLE_HEAD,
                      show_edge=False, pad_edge=False, collapse_padding=True)
        shown = self.layout(width)
        for col in shown:
            table.add_column(col.header, width=col.width, no_wrap=True,
                             overflow="ignore" if col.is_id else "ellipsis",
                             justify=col.justify,  # type: ignore[arg-type]
                             style=col.style or None)
        index = [self.columns.index(col) for col in shown]
        for row in range(len(self.columns[0].cells) if self.columns else 0):
            style = self.row_styles[row] if self.row_styles else None
            table.add_row(*[self.columns[i].cells[row] for i in index], style=style)
        return table, sum(col.width for col in shown) + _GAP * (len(shown) - 1)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        ids = [c for c in self.columns if c.is_id]
        if len(ids) == 1 and len(self.columns) > 1 and ids[0].natural > width // 2:
            yield from self._stacked(console, options, ids[0])
            return
        table, used = self.table(width)
        # Only an id wider than the screen makes the table wider than it.
        yield from console.render(table, options.update_width(max(width, used)))

    def _stacked(self, console: Console, options: ConsoleOptions,
                 id_column: _Column) -> RenderResult:
        """Ids too wide to share a line: each row's id on a line of its own, above it."""
        rest = FitTable(self.title, [c for c in self.columns if c is not id_column],
                        self.row_styles)
        table, used = rest.table(options.max_width)
        lines = console.render_lines(table, options.update_width(max(options.max_width, used)),
                                     pad=False)
        rows = len(id_column.cells)
        head, body = lines[:len(lines) - rows], lines[len(lines) - rows:]
        style = console.get_style("bold")
        for number, line in enumerate(head):
            if number == len(head) - 2:  # above the column headers: the ids' header
                yield Segment(id_column.header, style)
                yield Segment.line()
            yield from line
            yield Segment.line()
        for value, line in zip(id_column.cells, body, strict=True):
            yield Segment(value, style)
            yield Segment.line()
            yield from line
            yield Segment.line()

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        natural = sum(c.natural for c in self.columns) + _GAP * (len(self.columns) - 1)
        return Measurement(min(natural, options.max_width), natural)


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


def trace_tree(lineage: Lineage) -> Group:
    """The trace as a tree: kind, name, duration, status; LLM calls; documents per run."""
    llm = _llm_by_run(lineage)
    docs: dict[str, list[Any]] = {}
    for use in lineage.documents:
        docs.setdefault(use.run_id, []).append(use)
    tree = Tree("", hide_root=True)

    def add(node: RunNode, parent: Tree) -> None:
        call = llm.get(node.run.id)
        branch = parent.add(_run_label(node.run, call))
        if call is not None and call.tool_calls:
            branch.add(Text(f"tool calls: {_tool_calls_text(call.tool_calls)}",
                            style="dim"))
        for use in docs.get(node.run.id, []):
            score = "-" if use.score is None else f"{use.score:.3f}"
            source = use.metadata.get("source") or use.document_id
            branch.add(Text(f"[{use.stage.value} #{shown_rank(use.rank)}] score={score} "
                            f"{_short(source, 50)}  {_short(use.content, 60)}", style="dim"))
        for child in node.children:
            add(child, branch)

    for root in lineage.roots or ([lineage.tree] if lineage.tree else []):
        add(root, tree)
    if lineage.evaluations:
        from .evals._report import evaluation_line

        judged = tree.add(Text("evaluations", style="bold"))
        for evaluation in lineage.evaluations:
            judged.add(evaluation_line(evaluation))
    return Group(id_line("trace ", lineage.trace_id), tree)


# -- lineage -------------------------------------------------------------------------


def lineage_view(lineage: Lineage) -> Group:
    """What produced this answer: question, documents by stage, prompt, model, cost, answer."""
    parts: list[RenderableType] = [
        id_line("Trace ", lineage.trace_id),
        Text.assemble(("Question: ", "bold"), _short(lineage.question, 300)),
    ]
    for stage in DocStage:
        uses = lineage.documents_at(stage)
        if not uses:
            continue
        parts.append(FitTable(f"Documents {stage.value}", [
            _Column("rank", [shown_rank(u.rank) for u in uses], justify="right", least=4),
            _Column("score", ["-" if u.score is None else f"{u.score:.4f}" for u in uses],
                    drop=3, whole=True),
            _Column("input rank", [shown_rank(u.input_rank) for u in uses], drop=4, least=10),
            _Column("document", [u.document_id or "-" for u in uses], is_id=True),
            _Column("source", [_short(u.metadata.get("source"), 40) for u in uses], drop=2),
            _Column("content", [_short(u.content, 60) for u in uses], drop=1, least=10,
                    flex=True),
        ]))
    for call in lineage.llm_calls:
        parts.append(id_line("LLM call ", call.run_id))
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
    table = Table(show_header=False, box=box.SIMPLE, show_edge=False, pad_edge=False)
    table.add_column("field", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
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
        ("tools offered", ", ".join(t.get("name", "?") for t in meta.tools) if meta.tools
         else "-"),
        ("tool calls", _tool_calls_text(meta.tool_calls)),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table


def _tool_calls_text(calls: Sequence[dict[str, Any]] | None) -> str:
    """``name(arguments) id=...`` per tool call the model made, or ``-``."""
    if not calls:
        return "-"
    return "; ".join(
        f"{c.get('name')}({_short(json.dumps(c.get('arguments'), default=str), 80)})"
        f" id={c.get('id') or '-'}" for c in calls)


# -- tables ----------------------------------------------------------------------------


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else "-"


def traces_table(rows: Sequence[TraceSummary]) -> FitTable:
    """Recent traces: trace id, time, status, cost, question, answer, name, app, duration,
    tokens."""
    return FitTable("Traces", [
        _Column("trace", [r.trace_id for r in rows], is_id=True),
        _Column("started (UTC)", [_when(r.started_at) for r in rows], drop=3, least=10),
        _Column("status", [r.status.value for r in rows], least=6),
        _Column("cost", [format_cost(r.total_cost, r.unpriced_calls) for r in rows],
                drop=4, justify="right", whole=True),
        _Column("question", [_short(r.question, 60) for r in rows], drop=1, least=12,
                flex=True),
        _Column("answer", [_short(r.answer, 60) for r in rows], drop=5, least=10, flex=True),
        _Column("name", [r.name for r in rows], drop=8, least=8, flex=True),
        _Column("app", [r.app_name or "-" for r in rows], drop=6, flex=True),
        _Column("duration", [format_ms(r.duration_ms) for r in rows], drop=7,
                justify="right", least=8),
        _Column("tokens", [str(r.total_tokens) for r in rows], drop=2, justify="right",
                whole=True),
    ])


def documents_table(rows: Sequence[DocumentUsage]) -> FitTable:
    """Answers that used a document, with the stage it reached and its 1-based rank."""
    return FitTable("Answers using the document", [
        _Column("trace", [r.trace_id for r in rows], is_id=True),
        _Column("started (UTC)", [_when(r.started_at) for r in rows], drop=4, least=10),
        _Column("stage", [r.stage.value for r in rows], least=9),
        _Column("rank", [shown_rank(r.rank) for r in rows], justify="right", least=4),
        _Column("score", ["-" if r.score is None else f"{r.score:.4f}" for r in rows],
                drop=3, justify="right", whole=True),
        _Column("question", [_short(r.question, 60) for r in rows], drop=1, least=10,
                flex=True),
        _Column("answer", [_short(r.answer, 60) for r in rows], drop=2, least=10, flex=True),
    ])


def group_label(key: str, row: UsageRow) -> str:
    """How a usage group's value is shown: a template by its name (or first line) and a
    short hash; anything else as it is."""
    value = row.group.get(key)
    if value is None:
        return "-"
    if key == "template":
        name = row.template_name
        return f"{_short(name, 60)} ({str(value)[:12]})" if name else str(value)[:12]
    return str(value)


def usage_table(rows: Sequence[UsageRow], group_by: Sequence[str]) -> FitTable:
    """Tokens and cost per group; unpriced calls in their own column, never as $0."""
    groups = [_Column(key, [group_label(key, r) for r in rows], least=12) for key in group_by]
    numbers = [
        ("calls", [str(r.calls) for r in rows], 0),
        ("input", [str(r.input_tokens) for r in rows], 4),
        ("output", [str(r.output_tokens) for r in rows], 5),
        ("total", [str(r.total_tokens) for r in rows], 0),
        ("cache read", [str(r.cache_read_tokens) for r in rows], 6),
        ("reasoning", [str(r.reasoning_tokens) for r in rows], 7),
        ("cost", [format_cost(r.total_cost) for r in rows], 0),
        ("unpriced calls", [str(r.unpriced_calls) for r in rows], 0),
    ]
    return FitTable(f"Usage by {', '.join(group_by)}", groups + [
        _Column(name, cells, drop=drop, justify="right", least=max(5, *map(len, cells or [""])))
        for name, cells, drop in numbers])


# -- diff and replay -------------------------------------------------------------------


def diff_table(rows: Iterable[dict[str, Any]], a_id: str, b_id: str) -> Group:
    """The rows of :func:`diff_rows` as a table, differences marked, under the two ids."""
    rows = list(rows)
    table = FitTable(None, [
        _Column("", [" " if r["same"] else "≠" for r in rows], least=1),
        _Column("field", [r["field"] for r in rows], style="bold", least=10),
        _Column("A", [_short(_plain(r["a"]), 60) for r in rows], least=10, flex=True),
        _Column("B", [_short(_plain(r["b"]), 60) for r in rows], least=10, flex=True),
    ], row_styles=["" if r["same"] else "yellow" for r in rows])
    return Group(id_line("A ", a_id), id_line("B ", b_id), table)


def _plain(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)
