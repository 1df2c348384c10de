"""The Recorder: framework-neutral bookkeeping of runs, with no I/O.

Adapters call it from framework callbacks; it is their run table (the open runs, with
each adapter's own state for them), assigns lineage, reads the clock once at the edge,
redacts and bounds payloads, and hands each finished run to a
:class:`~ragtrail.sink.Sink`: as an :class:`~.records.EndedRun` (a light, slotted
record) to a sink that takes them (:class:`~ragtrail.sink.LightSink`), which builds and
prices the :class:`CapturedRun` (by :mod:`.records`) off the application's thread, else
built here; documents reaching a prompt are linked by :mod:`.prompt_links`. No method
raises into the caller: internal errors are logged (rate-limited) and counted.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from .._forksafe import fork_safe_lock
from ..guard import error_counter, guarded, report_failure
from ..redaction import Redactor
from ..schemas import (
    AppContext,
    DocStage,
    Framework,
    LLMMetadata,
    RunError,
    RunKind,
    RunStatus,
    bounded_key,
    content_hash,
)
from ..sink import Sink
from ._safe_json import ConvertedCache, Limits, SafeJson
from ._state import OpenRun, PendingDocument, PendingLink, TraceState
from ._values import error_of, hidden, prompt_text, score_of
from .ambient import ambient_parents
from .config import CaptureConfig
from .llm_update import LLMUpdate
from .prompt_links import answering, link_in_prompt, non_answering_step, probes
from .records import EndedRun, PricerLike, RecordBuilder

__all__ = ["SOURCE_ID_KEY", "DocumentInput", "EndedRun", "PricerLike", "Recorder"]

#: Document metadata key holding the id of the document a piece was cut from.
SOURCE_ID_KEY = "ragtrail_source_id"

_UNSET: Any = object()
_RECENT_ENDED = 4_096  # ended runs remembered so late children still find their parent
#: Most records held back at once for an open ancestor's outcome (see _hold_for_ancestor);
#: beyond it a record is offered at once, its in_prompt links as they were found.
_MAX_HELD = 10_000
_AGE_SCAN_EVERY = 256
_TEXT_FIELDS = frozenset(
    {"messages", "prompt_text", "output_text", "prompt_variables", "prompt_template",
     "tools", "tool_calls", "tool_choice"})


@dataclass(frozen=True)
class DocumentInput:
    """A document as an adapter sees it, before hashing, redaction and bounding."""

    text: str
    document_id: str | None = None
    metadata: Mapping[str, Any] | None = None
    score: float | None = None
    input_rank: int | None = None
    #: ``content_hash(text)`` when the adapter has it already (computed when None).
    content_hash: str | None = None
    #: Id of the document this one was cut from when a step changed its text (a
    #: splitter, an extractor): it becomes this document's id when it has none of its
    #: own, and is kept in its metadata under ``ragtrail_source_id``, so that
    #: ``answers_using(source_id)`` finds the answers built from its pieces.
    source_id: str | None = None


#: The last second formatted by _segment, as (second's datetime fields, text).
_last_second: tuple[tuple[int, ...], str] = ((), "")


def _segment(started_at: datetime, run_id: str) -> str:
    # Like LangSmith's dotted order: start time then id, so sorting by path is
    # depth-first in start order and a subtree is the range [path, path + "/").
    # Dots inside ids (LlamaIndex span ids have them) would fake a level.
    # The same text as strftime("%Y%m%dT%H%M%S%fZ"), at a fraction of its cost: runs
    # come many per second, so the second's text is formatted once and reused.
    global _last_second
    t = started_at
    key = (t.second, t.minute, t.hour, t.day, t.month, t.year)
    known, text = _last_second  # one tuple: threads see a consistent pair
    if known != key:
        text = f"{t.year:04d}{t.month:02d}{t.day:02d}T{t.hour:02d}{t.minute:02d}{t.second:02d}"
        _last_second = (key, text)
    return f"{text}{t.microsecond:06d}Z{run_id.replace('.', '_')}"


class Recorder:
    """Keeps open runs and hands finished ones to its sink (see the module docstring)."""

    def __init__(
        self,
        sink: Sink,
        *,
        config: CaptureConfig | None = None,
        redactor: Redactor | None = None,
        pricer: PricerLike | None = None,
        app: AppContext | None = None,
    ) -> None:
        self.sink = sink
        self.config = config or CaptureConfig()
        self.redactor = redactor or Redactor()
        if pricer is None:
            from ..pricing import Pricer

            pricer = Pricer()
        self._records = RecordBuilder(self.config, pricer)
        self.app = app or AppContext()
        self._limits = Limits(
            max_string_chars=self.config.max_string_chars,
            max_list_items=self.config.max_list_items,
            max_depth=self.config.max_depth,
            max_payload_chars=self.config.max_payload_chars,
        )
        # Conversions of framework objects met again in later steps' payloads; only
        # when redaction is a pure function of the text (see ConvertedCache).
        self._converted = ConvertedCache() if self.redactor.pure else None
        self._lock = fork_safe_lock(self, factory=threading.RLock)
        self._open: OrderedDict[str, OpenRun] = OrderedDict()
        self._traces: dict[str, TraceState] = {}
        self._recent: OrderedDict[str, tuple[str, str]] = OrderedDict()  # id -> (trace, path)
        self._cut: dict[str, float] = {}  # open runs cut short (see cut_below) -> when
        # Ended runs' records with in_prompt links, held by the id of their nearest open
        # ancestor until it ends: it may turn out a reranker or filter (_settle_held).
        self._held: dict[str, list[EndedRun]] = {}
        self._held_count = 0
        self._starts = 0
        self._counts = {"started": 0, "ended": 0, "offered": 0, "refused": 0, "abandoned": 0,
                        "duplicate_starts": 0, "unknown_ends": 0}
        self.last_trace_id: str | None = None

    @property
    def sink(self) -> Sink:
        """Where finished runs go; one with ``offer_light`` (a
        :class:`~ragtrail.sink.LightSink`) gets :class:`EndedRun` records to build."""
        return self._sink

    @sink.setter
    def sink(self, sink: Sink) -> None:
        offer_light = getattr(sink, "offer_light", None)
        self._offer_light = offer_light if callable(offer_light) else None
        self._sink = sink

    @property
    def pricer(self) -> PricerLike:
        """What prices LLM calls (see :class:`~ragtrail.capture.records.RecordBuilder`)."""
        return self._records.pricer

    @pricer.setter
    def pricer(self, pricer: PricerLike) -> None:
        self._records.pricer = pricer

    # -- public API ------------------------------------------------------------

    def start_run(
        self,
        run_id: object,
        *,
        kind: RunKind | str,
        name: str,
        framework: Framework = Framework.MANUAL,
        parent_id: object | None = None,
        inputs: Any = None,
        tags: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        user_id: object | None = None,
        session_id: str | None = None,
        app: AppContext | None = None,
        owner: object = None,
        state: Any = None,
        on_end: Callable[[str], None] | None = None,
    ) -> bool:
        """Open a run. False (not an error) if a run with this id is already open.

        The Recorder is the adapters' run table, as langchain-core's ``_TracerCore`` is
        for its tracers: ``owner`` (the adapter object recording the run) and ``state``
        (its own framework state for the run) stay with the open run, found again with
        :meth:`state_of`; ``on_end`` is called with the trace id when the run ends
        (through :meth:`end_run` or :meth:`fail_run`, not when it is abandoned), e.g. to
        keep the last trace id of a framework's root runs. A start of an open run is a
        duplicate, counted in :meth:`stats`, unless the same ``owner`` started it: a
        framework delivering one event twice (a handler attached twice) sees the run as
        its own in :meth:`state_of`.
        """
        try:
            return self._start(run_id, kind, name, framework, parent_id, inputs, tags, metadata,
                               user_id, session_id, app, (owner, state, on_end))
        except Exception as exc:
            self._failed("start_run", exc)
            return False

    def end_run(
        self, run_id: object, *, outputs: Any = _UNSET, status: RunStatus = RunStatus.OK
    ) -> EndedRun | None:
        """End a run and offer it to the sink. Returns the ended run (its record is
        :meth:`EndedRun.build`), or None if the run is unknown."""
        try:
            return self._end(str(run_id), outputs, status, None)
        except Exception as exc:
            self._failed("end_run", exc)
            return None

    def fail_run(
        self,
        run_id: object,
        error: BaseException | str,
        *,
        outputs: Any = _UNSET,
        status: RunStatus = RunStatus.ERROR,
    ) -> EndedRun | None:
        """End a run with an error (status ``error``, or ``cancelled``)."""
        try:
            run_error = error_of(error, self.redactor, self._limits)
            return self._end(str(run_id), outputs, status, run_error)
        except Exception as exc:
            self._failed("fail_run", exc)
            return None

    def set_inputs(self, run_id: object, inputs: Any) -> None:
        """Replace a run's inputs (when the framework reports them late)."""
        self._update(run_id, "set_inputs", lambda run: self._set_payload(run, "inputs", inputs))

    def set_kind(self, run_id: object, kind: RunKind | str, name: str | None = None) -> None:
        """Change a run's kind (e.g. a step recognised as a reranker when it ends)."""

        def apply(run: OpenRun) -> None:
            run.kind = RunKind.coerce(kind)
            if name:
                run.name = name

        self._update(run_id, "set_kind", apply)

    # Mapping[str, Any] is still accepted for the LlamaIndex adapter, which passes plain
    # dicts until it builds LLMUpdate too; then the seam narrows to the two typed forms.
    def update_llm(
        self, run_id: object, meta: LLMMetadata | LLMUpdate
    ) -> None:
        """Merge LLM metadata into a run; later non-None values win, groups merge field-wise.

        ``meta``: an :class:`~ragtrail.capture.LLMUpdate` (the adapters' typed seam: a
        misspelled key is a type error under mypy) or a whole
        :class:`~ragtrail.schemas.LLMMetadata`. (A plain mapping is still accepted at run time.)

        Messages or prompt text given here are also matched against the trace's documents
        to link those that reached the prompt at stage ``in_prompt``.
        """
        self._update(run_id, "update_llm", lambda run: self._merge_llm(run, meta))

    def add_documents(
        self, run_id: object, documents: Iterable[DocumentInput], *, stage: DocStage
    ) -> None:
        """Attach documents to a run at a stage, ranked in the order given."""
        self._update(run_id, "add_documents", lambda run: self._add_docs(run, documents, stage))

    def note_prompt_template(
        self, run_id: object, template: str, variables: Mapping[str, Any] | None = None,
        *, name: str | None = None,
    ) -> None:
        """Remember the template a prompt step rendered; LLM calls later in the trace get it.

        ``name``: the template's name where the framework gives one.
        """

        def apply(run: OpenRun) -> None:
            state = self._traces.get(run.trace_id)
            if state is not None:
                conv = self._conv()
                values = conv.convert(dict(variables)) if variables is not None else None
                shown = conv.text(name) if isinstance(name, str) and name else None
                state.template = (conv.text(template), values, content_hash(template), shown)

        self._update(run_id, "note_prompt_template", apply)

    def record_first_token(self, run_id: object) -> None:
        """Mark the first streamed token of a run (the first call counts)."""
        now = time.perf_counter_ns()

        def apply(run: OpenRun) -> None:
            if run.first_token_ns is None:
                run.first_token_ns = now

        self._update(run_id, "record_first_token", apply)

    def record_retry(self, run_id: object) -> None:
        """Count one retry of a run."""

        def apply(run: OpenRun) -> None:
            run.retries += 1

        self._update(run_id, "record_retry", apply)

    def add_event(self, run_id: object, name: str, data: Any = None) -> None:
        """Keep a custom event on a run."""
        at = datetime.now(timezone.utc).isoformat()

        def apply(run: OpenRun) -> None:
            conv = self._conv()
            run.events.append({"name": conv.text(str(name)), "at": at, "data": conv.convert(data)})
            run.truncated |= conv.truncated
            run.redacted |= conv.redacted

        self._update(run_id, "add_event", apply)

    def add_metadata(self, run_id: object, metadata: Mapping[str, Any]) -> None:
        """Merge keys into a run's metadata."""

        def apply(run: OpenRun) -> None:
            conv = self._conv()
            run.metadata.update(conv.convert(dict(metadata)))

        self._update(run_id, "add_metadata", apply)

    def is_answering(self, run_id: object) -> bool:
        """Whether an LLM call made in this open run may produce (part of) the answer.

        The in-prompt rule: a document is linked ``in_prompt`` only when its text reached
        the prompt of an *answering* LLM call. A call is not answering when one of its
        ancestors is a run of a kind in :data:`~ragtrail.schemas.NON_ANSWERING_KINDS`
        (a retriever, a reranker, a parser, an embedding step: the LLM of a reranker or
        filter, a query rewriter, a parser's retry) or when it or an ancestor declares a
        :class:`~ragtrail.schemas.StepRole` under :data:`~ragtrail.schemas.ROLE_KEY` in
        its metadata (an evaluator, a query rewriter written as a chain). The Recorder
        applies the rule itself in :meth:`update_llm`. A step recognised as a reranker
        or filter only when it ends (its kind set, or its role declared, before
        :meth:`end_run`) is covered too: an LLM call's record with ``in_prompt`` links is
        held until its open ancestors have ended, and the links are dropped when one of
        them ended as such a step. Ancestors that already ended are not looked at.
        """
        with self._lock:
            run = self._open.get(str(run_id))
            return run is not None and answering(run, self._open)

    def is_open(self, run_id: object) -> bool:
        """True while a run with this id has started and not ended."""
        return str(run_id) in self._open

    def trace_of(self, run_id: object) -> str | None:
        """Trace id of an open or recently ended run."""
        key = str(run_id)
        with self._lock:
            run = self._open.get(key)
            if run is not None:
                return run.trace_id
            recent = self._recent.get(key)
            return recent[0] if recent else None

    def kind_of(self, run_id: object) -> RunKind | None:
        """Kind of an open run."""
        run = self._open.get(str(run_id))
        return run.kind if run is not None else None

    # -- the run table ---------------------------------------------------------------

    @property
    def lock(self) -> Any:
        """The run table's lock (reentrant): an adapter holds it to read or change the
        ``state`` of several open runs together. Recorder methods may be called under it.
        """
        return self._lock

    def state_of(self, run_id: object, owner: object = None) -> Any:
        """The ``state`` an open run was started with, when ``owner`` started it; else None."""
        run = self._open.get(str(run_id))
        if run is None or run.owner is not owner:
            return None
        return run.state

    def children_of(self, run_id: object, owner: object = None) -> list[str]:
        """Ids of the open runs started with this one as their ``parent_id`` (by ``owner``).

        Runs placed under it by an ambient parent provider are not its children here.
        """
        with self._lock:
            run = self._open.get(str(run_id))
            if run is None or not run.children:
                return []
            return [c for c in run.children
                    if (child := self._open.get(c)) is not None and child.owner is owner]

    def cut_below(self, run_id: object, owner: object = None) -> int:
        """Mark the open descendants of a run (those ``owner`` started) as cut short.

        A framework that abandons inner steps (a stream closed early) may still end them:
        a cut run ends ``cancelled`` whatever status it ends with
        (:meth:`is_cut` tells), and :meth:`cancel_overdue_cuts` ends those that never do.
        Returns how many runs were newly cut.
        """
        now = time.monotonic()
        with self._lock:
            run = self._open.get(str(run_id))
            stack, count = list(run.children or ()) if run is not None else [], 0
            while stack:
                child = self._open.get(stack.pop())
                if child is None or child.owner is not owner or child.id in self._cut:
                    continue
                self._cut[child.id] = now
                stack.extend(child.children or ())
                count += 1
            return count

    def is_cut(self, run_id: object) -> bool:
        """Whether an open run was cut short by :meth:`cut_below`."""
        return bool(self._cut) and str(run_id) in self._cut

    @property
    def has_cuts(self) -> bool:
        """Whether some run was cut short and has not ended yet (cheap, unlocked)."""
        return bool(self._cut)

    def cancel_overdue_cuts(self, grace_s: float, error: Callable[[], BaseException]) -> int:
        """End as ``cancelled`` (with ``error()``) the cut runs still open ``grace_s``
        after they were cut. Returns how many."""
        if not self._cut:
            return 0
        limit = time.monotonic() - grace_s
        with self._lock:
            late = [rid for rid, at in self._cut.items() if at <= limit]
            for rid in late:
                del self._cut[rid]
        return sum(self.fail_run(rid, error(), status=RunStatus.CANCELLED) is not None
                   for rid in late)

    def abandon_all(self) -> int:
        """Store every open run as ``abandoned`` (on close). Returns how many."""
        with self._lock:
            ids = list(self._open)
        for run_id in ids:
            self._end(run_id, _UNSET, RunStatus.ABANDONED, None)
        return len(ids)

    def after_fork_in_child(self) -> None:
        """In a forked child: none of the parent's open runs (the lock is renewed by
        :func:`fork_safe_lock`).

        The parent ends and stores the runs it had open; were the child to keep them, it
        would store them again, as abandoned, when it exits.
        """
        self._open = OrderedDict()
        self._traces = {}
        self._cut = {}
        self._held, self._held_count = {}, 0
        self._records.environment = None

    def stats(self) -> dict[str, Any]:
        """Counters: runs started, ended, offered, refused by the sink, abandoned, errors."""
        with self._lock:
            counts: dict[str, Any] = dict(self._counts)
            counts["open_runs"] = len(self._open)
        counts["internal_errors"] = error_counter.total()
        return counts

    # -- internals -------------------------------------------------------------

    def _failed(self, where: str, exc: Exception) -> None:
        report_failure(f"recorder.{where}", "ragtrail: Recorder.%s failed: %s: %s", where,
                       type(exc).__name__, exc)

    def _conv(self) -> SafeJson:
        return SafeJson(self._limits, self.redactor, self._converted)

    def _update(self, run_id: object, where: str, apply: Any) -> None:
        try:
            with self._lock:
                run = self._open.get(str(run_id))
                if run is not None:
                    apply(run)
        except Exception as exc:
            self._failed(where, exc)

    def _set_payload(self, run: OpenRun, attr: str, value: Any) -> None:
        try:
            hide = self.config.hide_inputs if attr == "inputs" else self.config.hide_outputs
            if hide:
                setattr(run, attr, hidden(value, self._limits))
                run.redacted = True
                return
            conv = self._conv()
            setattr(run, attr, conv.convert(value))
            run.truncated |= conv.truncated
            run.redacted |= conv.redacted
            run.size += conv.size
        except Exception as exc:  # this payload is lost, not the run
            setattr(run, attr, None)
            run.truncated = True
            self._failed(f"capture.{attr}", exc)

    def _start(
        self,
        run_id: object,
        kind: RunKind | str,
        name: str,
        framework: Framework,
        parent_id: object | None,
        inputs: Any,
        tags: Sequence[str] | None,
        metadata: Mapping[str, Any] | None,
        user_id: object | None,
        session_id: str | None,
        app: AppContext | None,
        slot: tuple[object, Any, Callable[[str], None] | None],
    ) -> bool:
        started_at = datetime.now(timezone.utc)
        start_ns = time.perf_counter_ns()
        rid = str(run_id)
        own_context = app
        if user_id is not None or session_id is not None:
            extra = AppContext(
                user_hash=self.redactor.hash_user(user_id) if user_id is not None else None,
                session_id=str(session_id) if session_id is not None else None,
            )
            own_context = (own_context or AppContext()).merged(extra)
        conv = self._conv()
        safe_meta = conv.convert(dict(metadata)) if metadata else {}
        with self._lock:
            known = self._open.get(rid)
            if known is not None:
                if known.owner is None or known.owner is not slot[0]:
                    self._counts["duplicate_starts"] += 1
                return False
            parent_key = str(parent_id) if parent_id is not None else None
            if parent_key is None:
                parent_key = next((p for p in ambient_parents(rid) if p in self._open), None)
            parent = self._open.get(parent_key) if parent_key else None
            if parent is not None:
                trace_id, parent_path, context = parent.trace_id, parent.path, parent.app
                if own_context is not None and own_context.request_type is not None:
                    # A trace has one request type, its root's: a step inside it (say,
                    # a node parser inside a judge's trace) cannot change it.
                    own_context = own_context.model_copy(update={"request_type": None})
            elif parent_key is not None and parent_key in self._recent:
                trace_id, parent_path = self._recent[parent_key]
                context = self.app
            else:
                if parent_key is not None:
                    safe_meta["external_parent_id"] = parent_key
                parent_key, trace_id, parent_path, context = None, rid, None, self.app
            segment = _segment(started_at, rid)
            run = OpenRun(
                id=rid,
                trace_id=trace_id,
                parent_id=parent_key,
                path=f"{parent_path}.{segment}" if parent_path else segment,
                kind=RunKind.coerce(kind),
                name=str(name) if name else "",
                framework=framework,
                started_at=started_at,
                start_ns=start_ns,
                app=context.merged(own_context),
                tags=[str(t) for t in tags] if tags else [],
                metadata=safe_meta,
                truncated=conv.truncated,
                redacted=conv.redacted,
            )
            run.owner, run.state, run.on_end = slot
            if parent is not None and parent_id is not None:
                if parent.children is None:
                    parent.children = set()
                parent.children.add(rid)
            self._open[rid] = run
            state = self._traces.get(trace_id)
            if state is None:
                state = self._traces[trace_id] = TraceState(trace_id)
            state.open_runs += 1
            self._counts["started"] += 1
            if inputs is not None:
                self._set_payload(run, "inputs", inputs)
            self._starts += 1
            evict = self._overflow(start_ns)
        for old in evict:
            self._end(old, _UNSET, RunStatus.ABANDONED, None)
        return True

    def _overflow(self, now_ns: int) -> list[str]:
        """Runs to abandon: beyond the open-run cap, or older than the age limit."""
        evict = []
        excess = len(self._open) - self.config.max_open_runs
        if excess > 0:
            evict.extend(list(self._open)[:excess])
        if self._starts % _AGE_SCAN_EVERY == 0:
            limit_ns = int(self.config.max_run_age_s * 1e9)
            evict.extend(r.id for r in self._open.values()
                         if now_ns - r.start_ns > limit_ns and r.id not in evict)
        return evict

    def _merge_llm(
        self, run: OpenRun, meta: LLMMetadata | LLMUpdate | Mapping[str, Any]
    ) -> None:
        data: dict[str, Any] = (meta.model_dump(exclude_none=True)
                                if isinstance(meta, LLMMetadata) else dict(meta))
        state = self._traces.get(run.trace_id)
        raw_prompt = prompt_text(data)
        if raw_prompt and state is not None and answering(run, self._open):
            link_in_prompt(run, state, raw_prompt)
        conv = self._conv()
        for key, value in data.items():
            if value is None:
                continue
            if key in _TEXT_FIELDS:
                value = hidden(value, self._limits) if self._hides(key) else conv.convert(value)
            elif key == "provider_specific":
                value = {**run.llm.get(key, {}), **conv.convert(dict(value))}
            elif isinstance(value, Mapping):
                fresh = {k: v for k, v in value.items() if v is not None}
                value = {**run.llm.get(key, {}), **fresh}
            run.llm[key] = value
        run.truncated |= conv.truncated
        run.redacted |= conv.redacted or any(self._hides(k) for k in data)
        run.size += conv.size

    def _hides(self, key: str) -> bool:
        if key in ("messages", "prompt_text", "prompt_variables"):
            return self.config.hide_inputs
        if key in ("output_text", "tool_calls"):
            return self.config.hide_outputs
        return False

    def _add_docs(self, run: OpenRun, documents: Iterable[DocumentInput], stage: DocStage) -> None:
        state = self._traces.get(run.trace_id)
        linked = {link.content_hash: link.rank for link in run.links if link.stage is stage}
        rank = max(linked.values(), default=-1) + 1
        limit = self.config.max_documents_per_stage
        cut = 0
        for doc in documents:
            if rank >= limit:  # a retriever returning 20,000 documents: keep the first ones
                cut += 1
                continue
            text = doc.text if isinstance(doc.text, str) else str(doc.text)
            digest = doc.content_hash or content_hash(text)
            if digest in linked:
                # The same text twice at one stage (a chunk indexed twice) is one document,
                # linked at its first rank; the store keeps one link per document and stage.
                rank += 1
                continue
            linked[digest] = rank
            conv = self._conv()
            stored = run.documents.get(digest)
            if stored is None:
                stored = run.documents[digest] = PendingDocument(
                    self._document_id(doc, digest, state),
                    None if self.config.hide_document_content else conv.text(text),
                    _doc_metadata(conv, doc))
            document_id = stored.document_id
            run.links.append(PendingLink(digest, document_id, stage, rank,
                                         score_of(doc.score), doc.input_rank))
            rank += 1
            run.truncated |= conv.truncated
            run.redacted |= conv.redacted or self.config.hide_document_content
            run.size += conv.size + 200
            if state is not None and digest not in state.documents:
                state.documents[digest] = (probes(text), document_id)
        if cut:
            run.truncated = True
            cuts = run.metadata.setdefault("documents_cut", {})
            cuts[stage.value] = cuts.get(stage.value, 0) + cut

    @staticmethod
    def _document_id(doc: DocumentInput, digest: str, state: TraceState | None) -> str:
        """The document's own id; else, for a copy (same text, id dropped by a
        compressor), the id its text already has in this trace; else its source's id;
        else its content hash."""
        if doc.document_id:
            return bounded_key(str(doc.document_id))
        known = state.documents.get(digest) if state is not None else None
        if known is not None:
            return known[1]
        if doc.source_id:
            return bounded_key(str(doc.source_id))
        return digest

    def _end(
        self, rid: str, outputs: Any, status: RunStatus, error: RunError | None
    ) -> EndedRun | None:
        end_ns = time.perf_counter_ns()
        ready: list[EndedRun] = []
        with self._lock:
            run = self._open.pop(rid, None)
            if run is None:
                self._counts["unknown_ends"] += 1
                return None
            if run.parent_id is not None:
                parent = self._open.get(run.parent_id)
                if parent is not None and parent.children:
                    parent.children.discard(rid)
            if self._cut:
                self._cut.pop(rid, None)
            if outputs is not _UNSET and outputs is not None:
                self._set_payload(run, "outputs", outputs)
            state = self._traces.get(run.trace_id)
            template = state.template if state is not None else None
            if state is not None:
                state.open_runs -= 1
                if state.open_runs <= 0:
                    del self._traces[run.trace_id]
            self._recent[rid] = (run.trace_id, run.path)
            if len(self._recent) > _RECENT_ENDED:
                self._recent.popitem(last=False)
            self._counts["ended"] += 1
            if status is RunStatus.ABANDONED:
                self._counts["abandoned"] += 1
            # The record is built by the sink (or below, for a sink that takes only
            # built records): what is kept here is the run's bookkeeping as it ended.
            ended = EndedRun(self._records, run, end_ns, status, error, template)
            held = self._held.pop(rid, None)  # popped with the run: none is added later
            if held:
                ready = self._settle_held(run, held)
            if not self._hold_for_ancestor(run, ended):
                ready.append(ended)
            if ready and self._offer_light is not None:
                # A light sink takes them at once (it never blocks): offered and counted
                # under this one lock, in the order the runs ended.
                offered, refused = _offer_each(self._offer_light, ready, self._failed)
                self._counts["offered"] += offered
                self._counts["refused"] += refused
                ready = []
        if run.parent_id is None:
            self.last_trace_id = run.trace_id
        on_end = run.on_end
        run.owner = run.state = run.on_end = None  # the adapter's objects are not stored
        if ready:
            self._offer_built(ready)  # children before their parent, as they ended
        if on_end is not None and status is not RunStatus.ABANDONED:
            self._root_ended(on_end, run.trace_id)
        return ended

    def _offer_built(self, ready: list[EndedRun]) -> None:
        """Build ended runs here and offer them to a sink that takes only records (outside
        the lock: such a sink may write, a SyncSink does)."""
        offered, refused = _offer_each(lambda ended: self._sink.offer(ended.build()), ready,
                                       self._failed)
        with self._lock:
            self._counts["offered"] += offered
            self._counts["refused"] += refused

    # -- in_prompt links of steps that turn out rerankers when they end -------------------
    # (called under the lock)

    def _hold_for_ancestor(self, run: OpenRun, ended: EndedRun) -> bool:
        """Hold ``ended`` (if it has in_prompt links) for its nearest open ancestor,
        which may still turn out a reranker or filter; False when there is none (or too
        many records are held), and the record is to be offered now."""
        if not any(link.stage is DocStage.IN_PROMPT for link in run.links):
            return False
        return self._hold_under(run.parent_id, [ended])

    def _hold_under(self, parent_id: str | None, records: list[EndedRun]) -> bool:
        parent = self._open.get(parent_id) if parent_id is not None else None
        if parent is None or self._held_count + len(records) > _MAX_HELD:
            return False
        self._held.setdefault(parent.id, []).extend(records)
        self._held_count += len(records)
        return True

    def _settle_held(self, run: OpenRun, held: list[EndedRun]) -> list[EndedRun]:
        """``run`` ended: the records held for it lose their in_prompt links when it ended
        a non-answering step (their LLM calls saw its candidates, not the answer's
        prompt), and are held on for its own open ancestor or returned to offer now."""
        self._held_count -= len(held)
        if non_answering_step(run):
            for ended in held:
                ended.run.links = [link for link in ended.run.links
                                   if link.stage is not DocStage.IN_PROMPT]
            return held
        if self._hold_under(run.parent_id, held):
            return []
        return held

    @guarded(default=None)
    def _root_ended(self, hook: Callable[[str], None], trace_id: str) -> None:
        hook(trace_id)


def _offer_each(offer: Callable[[EndedRun], bool], ready: list[EndedRun],
                failed: Callable[[str, Exception], None]) -> tuple[int, int]:
    """Offer each ended run, in order: (accepted, refused); a sink that raises refused."""
    accepted = refused = 0
    for ended in ready:
        ok = False
        try:
            ok = bool(offer(ended))
        except Exception as exc:  # counted as refused; the others are still offered
            failed("offer", exc)
        if ok:
            accepted += 1
        else:
            refused += 1
    return accepted, refused


def _doc_metadata(conv: SafeJson, doc: DocumentInput) -> dict[str, Any]:
    metadata: dict[str, Any] = conv.convert(dict(doc.metadata)) if doc.metadata else {}
    if doc.source_id:
        metadata[SOURCE_ID_KEY] = conv.text(str(doc.source_id))
    return metadata
