"""Building and pricing of records: a run that ended becomes a :class:`CapturedRun`.

Every value was made (validated, redacted, bounded) by the Recorder before, so records
are built without validating again; LLM calls get their provider resolved, their
timings derived and their cost priced here.

The Recorder does not build them on the application's thread when its sink takes light
records (:class:`~ragtrail.sink.LightRecord`, the background writer does): it hands over
an :class:`EndedRun`, a slotted object holding the run's bookkeeping as it ended, and
the sink builds the record where it stores it (the writer's thread).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import Enum
from typing import Any, Protocol, TypeVar

from ..guard import guarded
from ..providers import cache_write_1h_tokens, resolve_provider
from ..schemas import (
    CapturedRun,
    DocStage,
    Document,
    DocumentLink,
    Environment,
    Framework,
    LLMCostMetrics,
    LLMMetadata,
    LLMTokenUsage,
    Run,
    RunError,
    RunKind,
    RunStatus,
    bounded_key,
)
from ..schemas._base import construct
from ._state import OpenRun
from ._values import build_llm, performance, storable_cost
from .config import CaptureConfig

__all__ = ["EndedRun", "PricerLike", "RecordBuilder"]


class PricerLike(Protocol):
    """What the Recorder needs from :class:`ragtrail.pricing.Pricer`."""

    def cost(
        self,
        usage: LLMTokenUsage | None,
        *,
        model: str | None,
        provider: str | None = None,
        at: datetime | None = None,
        cache_write_1h_tokens: int | None = None,
    ) -> LLMCostMetrics:
        """Cost of one call (``cache_write_1h_tokens``: see :meth:`Pricer.cost`).

        A pricer may also have ``infer_provider(model) -> str | None`` (see
        :meth:`ragtrail.pricing.Pricer.infer_provider`): calls whose client named no
        provider then get the one their model name implies.
        """


class RecordBuilder:
    """Builds and prices the records of a Recorder's runs (see module docstring)."""

    def __init__(self, config: CaptureConfig, pricer: PricerLike) -> None:
        self.config = config
        self.pricer = pricer
        self.environment: dict[str, Any] | None = None  # detected once, for root runs

    def build(
        self,
        run: OpenRun,
        end_ns: int,
        status: RunStatus,
        error: RunError | None,
        template: tuple[str, dict[str, Any] | None, str, str | None] | None,
        pricer: PricerLike | None = None,
    ) -> CapturedRun:
        """The record of a run that ended (``template``: the trace's last rendered one;
        ``pricer``: the one to price its LLM call with, by default :attr:`pricer`)."""
        duration_ms = max(end_ns - run.start_ns, 0) / 1e6
        ended_at = run.started_at + timedelta(milliseconds=duration_ms)
        environment = None
        if run.parent_id is None and self.config.capture_environment:
            if self.environment is None:
                self.environment = Environment.detect().as_dict()
            environment = self.environment
        # Every value below was made (validated, redacted, bounded) by this Recorder, so
        # the records are built without validating again (``construct``, a shortcut of
        # model_construct): on the application's thread validation was most of the cost
        # of building a record.
        app = run.app
        # Keys the store indexes are bounded (see ragtrail.schemas.keys): a long session
        # token must not make the database refuse the record.
        run_id, trace_id = bounded_key(run.id), bounded_key(run.trace_id)
        parent_id = None if run.parent_id is None else bounded_key(run.parent_id)
        record_run = construct(Run, {
            "id": run_id, "trace_id": trace_id, "parent_id": parent_id,
            "path": run.path, "kind": run.kind, "name": run.name,
            "framework": _member(Framework, run.framework),
            "started_at": run.started_at, "ended_at": ended_at, "duration_ms": duration_ms,
            "status": _member(RunStatus, status), "error": error, "inputs": run.inputs,
            "outputs": run.outputs, "tags": run.tags, "metadata": run.metadata,
            "truncated": run.truncated, "redacted": run.redacted, "retries": run.retries,
            "events": run.events, "app_name": _key(app.app_name),
            "app_version": _key(app.app_version), "user_hash": app.user_hash,
            "session_id": _key(app.session_id), "request_type": _key(app.request_type),
            "environment": dict(environment) if environment is not None else None,
            "tenant": _key(app.tenant),
        })
        llm = None
        if run.kind is RunKind.LLM or run.llm:
            llm = self._llm_record(run, ended_at, duration_ms, template,
                                   self.pricer if pricer is None else pricer)
        links = [
            construct(DocumentLink, {
                "run_id": run_id, "trace_id": trace_id, "content_hash": link.content_hash,
                "document_id": link.document_id, "stage": _member(DocStage, link.stage),
                "rank": link.rank, "score": link.score, "input_rank": link.input_rank})
            for link in run.links
        ]
        documents = [
            construct(Document, {"document_id": doc.document_id, "content_hash": digest,
                                 "content": doc.content, "metadata": doc.metadata})
            for digest, doc in run.documents.items()
        ]
        record = construct(CapturedRun, {
            "run": record_run, "llm": llm, "documents": documents, "links": links})
        record._approx_bytes = run.size + 600 + 150 * len(links)
        return record

    def _llm_record(
        self,
        run: OpenRun,
        ended_at: datetime,
        duration_ms: float,
        template: tuple[str, dict[str, Any] | None, str, str | None] | None,
        pricer: PricerLike,
    ) -> LLMMetadata:
        data = dict(run.llm)
        if template is not None and "prompt_template" not in data:
            data["prompt_template"], variables, data["prompt_template_hash"], name = template
            if name is not None:
                data["prompt_template_name"] = name
            if variables is not None and "prompt_variables" not in data:
                data["prompt_variables"] = variables
        meta = build_llm(data)
        if meta.provider_model is None and meta.request_parameters is not None:
            meta.provider_model = meta.request_parameters.model
        if meta.provider_model is None and meta.response_metadata is not None:
            # A model that does not say what was asked for still says what answered.
            meta.provider_model = meta.response_metadata.model_version
        self._resolve_provider(meta, pricer)
        meta.provider, meta.provider_model = _key(meta.provider), _key(meta.provider_model)
        meta.request_timestamp = meta.request_timestamp or run.started_at
        meta.response_timestamp = meta.response_timestamp or ended_at
        meta.performance_metrics = performance(meta, run, duration_ms)
        if meta.cost_metrics is None or meta.cost_metrics.price_status is None:
            meta.cost_metrics = self._price(meta, run.started_at, pricer)
        meta.cost_metrics = storable_cost(meta.cost_metrics)
        return meta

    @guarded(default=None)
    def _resolve_provider(self, meta: LLMMetadata, pricer: PricerLike) -> None:
        resolve_provider(meta, getattr(pricer, "infer_provider", None))

    @guarded(default=None)
    def _price(self, meta: LLMMetadata, at: datetime, pricer: PricerLike) -> LLMCostMetrics | None:
        return pricer.cost(
            meta.token_usage, model=meta.provider_model, provider=meta.provider, at=at,
            cache_write_1h_tokens=cache_write_1h_tokens(meta.provider_specific),
        )


class EndedRun:
    """A run that ended, its record not built yet (a :class:`~ragtrail.sink.LightRecord`).

    What :meth:`Recorder.end_run` returns and hands to a sink that takes light records:
    the run's bookkeeping as it ended, the trace's last rendered template and the
    pricer of the moment, referenced, not copied (nothing changes them once the run has
    ended). :meth:`build` makes the :class:`CapturedRun` (once; later calls return the
    same record): the sink calls it where it stores the record, off the application's
    thread. ``approx_bytes`` is the record's approximate serialized size.
    """

    __slots__ = ("_builder", "_pricer", "_record", "approx_bytes", "end_ns", "error", "run",
                 "status", "template")

    def __init__(
        self,
        builder: RecordBuilder,
        run: OpenRun,
        end_ns: int,
        status: RunStatus,
        error: RunError | None,
        template: tuple[str, dict[str, Any] | None, str, str | None] | None,
    ) -> None:
        self._builder = builder
        self._pricer = builder.pricer
        self._record: CapturedRun | None = None
        self.run = run
        self.end_ns = end_ns
        self.status = status
        self.error = error
        self.template = template
        self.approx_bytes = run.size + 600 + 150 * len(run.links)

    @property
    def id(self) -> str:
        """The run id (as stored: bounded)."""
        return bounded_key(self.run.id)

    @property
    def trace_id(self) -> str:
        """The trace id (as stored: bounded)."""
        return bounded_key(self.run.trace_id)

    def build(self) -> CapturedRun:
        """The record, built on the first call; raises what building raises."""
        record = self._record
        if record is None:
            record = self._record = self._builder.build(
                self.run, self.end_ns, self.status, self.error, self.template, self._pricer)
        return record

    def __repr__(self) -> str:
        return f"EndedRun(id={self.run.id!r}, kind={self.run.kind.value!r}, " \
               f"status={self.status.value!r})"


_E = TypeVar("_E", bound=Enum)


def _key(value: str | None) -> str | None:
    return None if value is None else bounded_key(value)


def _member(enum: type[_E], value: Any) -> _E:
    """``enum(value)``, without the enum call when ``value`` is a member already."""
    return value if type(value) is enum else enum(value)
