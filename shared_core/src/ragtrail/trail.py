"""``Trail``: the one object a user creates. Capture in, queries out.

    trail = Trail()                                   # $RAGTRAIL_URL, else ./ragtrail.db
    trail = Trail("sqlite:///runs.db", app_name="support-bot", app_version="1.4.0")
    trail = Trail("postgresql+psycopg://postgres@127.0.0.1:5432/test")
    trail = Trail.open_readonly("sqlite:///runs.db")  # queries only; never writes
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from os import PathLike
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .errors import ConfigError
from .query import (
    DocumentUsage,
    DriftReport,
    DriftThresholds,
    Evaluation,
    EvaluationSource,
    Lineage,
    QualityReport,
    TraceSummary,
    UsageRow,
    answers_using,
    drift,
    evaluations,
    lineage,
    quality,
    resolve_id,
    traces,
    usage,
)
from .redaction import RedactionConfig, Redactor
from .schemas import DocStage, Framework, RunKind
from .sink import Sink
from .store import SqlStore, open_store

if TYPE_CHECKING:
    # Capture's modules (recorder, writer, prices) load when a Trail captures: a Trail
    # opened read-only, as the CLI opens one, never needs them.
    from .capture import CaptureConfig, Recorder
    from .export._live import LiveExporter
    from .pricing import ModelPrice, Pricer
    from .writer import WriterConfig

__all__ = ["Trail"]


def _tenant(tenant: str | None) -> str | None:
    if tenant is not None and (not isinstance(tenant, str) or not tenant.strip()):
        raise ConfigError(f"Trail(tenant=...) takes a non-empty string or None, got {tenant!r}")
    return tenant


def _check_rights(store: SqlStore, purpose: str) -> None:
    """On PostgreSQL, refuse a role that lacks the rights ``purpose`` needs (one clear
    line; see ``ragtrail db roles``), closing the store."""
    if store.engine.dialect.name != "postgresql":
        return
    from .governance.roles import check_rights

    try:
        check_rights(store.engine, purpose, store.url)  # type: ignore[arg-type]
    except BaseException:
        store.close()
        raise

PriceOverrides = Mapping[str, "ModelPrice | Mapping[str, Any]"] | str | PathLike[str]


class Trail:
    """A store of runs with a Recorder feeding it and queries reading it.

    Construction checks the database (a bad URL, an unreachable server or a schema
    newer than this ragtrail raise one clear :class:`~ragtrail.errors.RagtrailError`);
    after that nothing in capture raises into the application.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        app_name: str | None = None,
        app_version: str | None = None,
        request_type: str | None = None,
        tenant: str | None = None,
        capture: CaptureConfig | None = None,
        redaction: RedactionConfig | None = None,
        writer: WriterConfig | None = None,
        prices: PriceOverrides | None = None,
        background: bool = True,
        sqlite_synchronous: str = "NORMAL",
        sqlite_cache_mib: int = 8,
        exporters: Sequence[LiveExporter] | None = None,
    ) -> None:
        """Open (and create if new) the store at ``url`` and start capturing.

        ``background=False`` writes on the caller's thread at :meth:`flush` instead of
        in the background writer: for scripts and imports, not for applications.
        ``sqlite_synchronous="FULL"`` makes every stored record survive an OS crash or
        power loss too (an fsync per batch); the default NORMAL survives application
        crashes and keeps the file consistent. ``sqlite_cache_mib``: SQLite's page cache
        per connection (default 8 MiB); more speeds up writes into a large database.
        ``exporters``: live exporters (e.g. :class:`ragtrail.export.OtlpExporter`) that
        get every batch once it is stored, on their own threads with bounded queues;
        their counters are in ``stats()["exporters"]``.
        ``tenant``: stored on every run (run metadata ``tenant`` or LlamaIndex
        ``instrument_tags`` override it per request); see README "Governance". On
        PostgreSQL the role connected must be able to capture (a writer role, see
        ``ragtrail db roles``), else :class:`~ragtrail.errors.ConfigError`.
        """
        from .capture import CaptureConfig, Recorder
        from .export._live import ExportingStore, LiveExporter
        from .pricing import Pricer
        from .schemas import AppContext
        from .sink import SyncSink
        from .writer import BackgroundWriter, WriterConfig, track_owner

        for name, value, kind in (("capture", capture, CaptureConfig),
                                  ("redaction", redaction, RedactionConfig),
                                  ("writer", writer, WriterConfig)):
            if value is not None and not isinstance(value, kind):
                raise ConfigError(f"Trail({name}=...) takes a {kind.__name__} or None, "
                                  f"got {type(value).__name__}")
        self._store: SqlStore = open_store(url, sqlite_synchronous=sqlite_synchronous,
                                           sqlite_cache_mib=sqlite_cache_mib)
        self.url = self._store.url
        _check_rights(self._store, "capture")
        self.redactor = Redactor(redaction)
        self._exporters = list(exporters or ())
        for exporter in self._exporters:
            if not isinstance(exporter, LiveExporter):
                raise ConfigError("Trail(exporters=[...]) takes exporters such as OtlpExporter, "
                                  f"got {type(exporter).__name__}")
        store: Any = ExportingStore(self._store, self._exporters) if self._exporters \
            else self._store
        self.sink: Sink
        writer_config = writer or WriterConfig()
        self._exit_timeout_s = writer_config.shutdown_timeout_s
        if background:
            self.sink = BackgroundWriter(store, writer_config, name=self.url)
        else:
            self.sink = SyncSink(store)
        pricer = Pricer(overrides=prices)
        self._pricer: Pricer | None = pricer
        self._readonly = False
        self._recorder: Recorder | None = Recorder(
            self.sink,
            config=capture,
            redactor=self.redactor,
            pricer=pricer,
            app=AppContext(app_name=app_name, app_version=app_version, request_type=request_type,
                           tenant=_tenant(tenant)),
        )
        self._closed = False
        self._lock = threading.Lock()
        # At interpreter exit a Trail never closed is closed before its writer: its
        # open runs are stored as abandoned, a SyncSink's buffer is written.
        track_owner(self)

    @classmethod
    def open_readonly(cls, url: str | None = None, *,
                      redaction: RedactionConfig | None = None) -> Trail:
        """Open the ragtrail database at ``url`` for queries only.

        Nothing is ever created, migrated or written: a SQLite file is opened read-only
        (a missing file is an error, not a new database), a PostgreSQL session is
        read-only. A database without ragtrail's tables (another application's, an
        empty file, an empty schema) or at another schema revision raises one clear
        :class:`~ragtrail.errors.RagtrailError`. The query methods (:meth:`traces`,
        :meth:`lineage`, :meth:`resolve_id`, :meth:`answers_using`, :meth:`usage`)
        work as on any Trail; capture (:attr:`recorder`, :meth:`run`, the framework
        adapters) raises :class:`~ragtrail.errors.ConfigError`. ``redaction`` only
        matters for its ``user_hash_secret``, which ``traces(user_id=...)`` matches by.
        The ``ragtrail`` command line opens its read commands this way.
        """
        if redaction is not None and not isinstance(redaction, RedactionConfig):
            raise ConfigError(f"Trail.open_readonly(redaction=...) takes a RedactionConfig "
                              f"or None, got {type(redaction).__name__}")
        trail = cls.__new__(cls)
        trail._store = open_store(url, readonly=True)
        trail.url = trail._store.url
        _check_rights(trail._store, "read")
        trail.redactor = Redactor(redaction)
        trail.sink = _ReadOnlySink()
        trail._exit_timeout_s = 0.0
        trail._pricer = None
        trail._recorder = None
        trail._exporters = []
        trail._readonly = True
        trail._closed = False
        trail._lock = threading.Lock()
        return trail

    @property
    def readonly(self) -> bool:
        """True for a Trail from :meth:`open_readonly`: it queries and never writes."""
        return self._readonly

    @property
    def recorder(self) -> Recorder:
        """The :class:`~ragtrail.capture.Recorder` the framework adapters feed."""
        if self._recorder is None:
            raise ConfigError(f"{self!r} was opened read-only (Trail.open_readonly): it "
                              "cannot capture; use Trail(url) to record runs")
        return self._recorder

    # -- capture ---------------------------------------------------------------

    @contextlib.contextmanager
    def run(
        self,
        name: str,
        *,
        kind: RunKind | str = RunKind.CHAIN,
        inputs: Any = None,
        parent_id: str | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        run_id: str | None = None,
    ) -> Iterator[ManualRun]:
        """Record a block of your own code as a run (errors are recorded and re-raised).

        Framework runs started inside the block become its children only when they are
        given its id as parent; LangChain and LlamaIndex runs started without a parent
        inside a framework run are linked by the adapters automatically.
        """
        rid = run_id or str(uuid.uuid4())
        self.recorder.start_run(
            rid, kind=kind, name=name, framework=Framework.MANUAL, parent_id=parent_id,
            inputs=inputs, metadata=metadata, user_id=user_id, session_id=session_id,
        )
        handle = ManualRun(self.recorder, rid)
        try:
            yield handle
        except BaseException as exc:
            self.recorder.fail_run(rid, exc)
            raise
        else:
            self.recorder.end_run(rid, outputs=handle.outputs)

    def flush(self, timeout_s: float = 10.0) -> bool:
        """True once everything captured so far is stored; False at the deadline."""
        return self.sink.flush(timeout_s)

    def close(self, timeout_s: float = 10.0) -> bool:
        """Store open runs as abandoned, flush within the deadline, release the store.

        Returns False when something could not be written in time (see :meth:`stats`).
        """
        with self._lock:
            if self._closed:
                return True
            self._closed = True
        if self._recorder is None:  # read-only: no writer, nothing to flush
            self._store.close()
            return True
        from .writer import forget_owner

        forget_owner(self)
        self._recorder.abandon_all()
        ok = self.sink.close(timeout_s)
        if self._exporters:
            from .export._live import close_all

            close_all(self._exporters)  # each within its own shutdown_timeout_s
        self._store.close()
        if self._pricer is not None:
            self._pricer.close()
        return ok

    def _close_at_exit(self) -> None:
        self.close(self._exit_timeout_s)

    def _after_fork_in_child(self) -> None:
        if self._recorder is not None:
            self._recorder.after_fork_in_child()

    def stats(self) -> dict[str, Any]:
        """Capture and writer counters: offered, stored, dropped by reason, errors, ...

        ``user_hash_key`` says whether user ids are hashed with a key of yours
        (``"configured"``) or ragtrail's public default one (``"default"``); never the key.
        """
        if self._recorder is None:
            return {"readonly": True, "user_hash_key": self.redactor.user_hash_key}
        writer_stats: Any = self.sink.stats()
        as_dict = getattr(writer_stats, "as_dict", None)
        stats = {"capture": self._recorder.stats(),
                 "writer": as_dict() if callable(as_dict) else dict(writer_stats),
                 "user_hash_key": self.redactor.user_hash_key}
        if self._exporters:
            stats["exporters"] = [exporter.stats() for exporter in self._exporters]
        return stats

    @property
    def store(self) -> SqlStore:
        """The SQL store (its ``engine`` serves custom queries)."""
        return self._store

    # -- queries ---------------------------------------------------------------

    def lineage(self, run_id: str | uuid.UUID) -> Lineage:
        """The whole trace holding ``run_id``: runs, LLM calls, documents by stage."""
        return lineage(self._store.engine, str(run_id))

    def resolve_id(self, id_or_prefix: str | uuid.UUID) -> str:
        """The stored run or trace id that ``id_or_prefix`` names, as git resolves hashes:
        an exact id first, else the one id starting with it (at least 4 characters).

        Raises :class:`~ragtrail.errors.NotFoundError` when nothing matches and
        :class:`~ragtrail.errors.AmbiguousIdError` (listing candidates) when several do.
        """
        return resolve_id(self._store.engine, str(id_or_prefix))

    def traces(
        self,
        *,
        limit: int = 20,
        since: datetime | None = None,
        until: datetime | None = None,
        app_name: str | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
        status: str | None = None,
        model: str | None = None,
        include_evaluations: bool = False,
    ) -> list[TraceSummary]:
        """Recent root runs, newest first. ``user_id`` is matched through its keyed hash.

        Judges' own traces (``request_type="evaluation"``) only with ``include_evaluations``.
        """
        return traces(
            self._store.engine, limit=limit, since=since, until=until, app_name=app_name,
            user_hash=self.redactor.hash_user(user_id) if user_id is not None else None,
            session_id=session_id, status=status, model=model,
            include_evaluations=include_evaluations,
        )

    def answers_using(self, document: str, *, limit: int | None = None,
                      min_stage: DocStage | str | None = None,
                      include_evaluations: bool = False) -> list[DocumentUsage]:
        """Traces whose answers used ``document`` (its id or content hash), with the stage,
        newest first; ``limit`` keeps only the newest ``limit`` of them; ``min_stage``
        (e.g. ``"in_prompt"``) only those where the document got at least that far.
        Judges' traces only with ``include_evaluations``."""
        return answers_using(self._store.engine, document, limit=limit, min_stage=min_stage,
                             include_evaluations=include_evaluations)

    def usage(
        self,
        group_by: Sequence[str] | str = ("model",),
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        request_type: str | None = None,
        include_evaluations: bool = False,
    ) -> list[UsageRow]:
        """Tokens and cost grouped by model, provider, app_name, user, session, day, template,
        request_type (``"ingestion"`` for LlamaIndex ingestion pipelines).

        Judges' calls are left out unless ``include_evaluations``;
        ``request_type="evaluation"`` gives the judges' spend alone.
        """
        return usage(self._store.engine, group_by=group_by, since=since, until=until,
                     request_type=request_type, include_evaluations=include_evaluations)

    # -- quality and drift -----------------------------------------------------

    def quality(self, since: datetime | str | None = None, until: datetime | str | None = None,
                group_by: Sequence[str] | str = ("app_name",)) -> QualityReport:
        """How complete the trail is in [since, until), per group (app_name, model,
        provider, template): each figure a count out of a denominator with example ids
        (see :mod:`ragtrail.query._quality`)."""
        return quality(self._store.engine, since=since, until=until, group_by=group_by)

    def drift(self, baseline: tuple[datetime | str | None, datetime | str | None],
              current: tuple[datetime | str | None, datetime | str | None],
              group_by: Sequence[str] | str = ("app_name",), *,
              thresholds: DriftThresholds | None = None) -> DriftReport:
        """What moved between the ``baseline`` and ``current`` windows (each a
        ``(start, end)`` pair): models, templates, parameters, retrieval, tokens, cost,
        latency, errors, evaluations. ``report.findings`` are the changes beyond
        ``thresholds``; needs ``ragtrail[drift]`` (SciPy)."""
        return drift(self._store.engine, baseline=baseline, current=current,
                     group_by=group_by, thresholds=thresholds)

    # -- evaluations -----------------------------------------------------------

    def add_evaluation(
        self,
        target_id: str | uuid.UUID,
        name: str,
        *,
        score: float | None = None,
        label: str | None = None,
        passed: bool | None = None,
        explanation: str | None = None,
        source: EvaluationSource | str = "code",
        vendor_name: str = "custom",
        vendor_version: str | None = None,
        document_id: str | None = None,
        judge_trace_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        evaluation_id: str | None = None,
    ) -> str:
        """Store an evaluation of a trace (``target_id``: the trace id or any run id of it);
        returns its id.

        At least one of ``score`` (a finite number), ``label`` or ``passed``. ``source`` is
        ``human``, ``llm`` or ``code``; ``document_id`` makes it the evaluation of one
        document of the trace; ``judge_trace_id`` links the judge's own trace (its tokens
        and cost are summed into :attr:`Evaluation.judge`); ``evaluation_id`` makes the
        call idempotent (a second call with it replaces the first). An unknown
        ``vendor_name`` is added to the vendor catalog. A target not stored yet is
        accepted: :meth:`evaluations` shows the evaluation once the trace is stored.
        The explanation and metadata are redacted and bounded like captured text.
        Raises :class:`~ragtrail.errors.ConfigError` naming the bad argument.
        """
        return self._write_evaluation(
            target_id, name, score=score, label=label, passed=passed, explanation=explanation,
            source=source, vendor_name=vendor_name, vendor_version=vendor_version,
            document_id=document_id, judge_trace_id=judge_trace_id, metadata=metadata,
            evaluation_id=evaluation_id, error=None)

    def _write_evaluation(self, target_id: Any, name: Any, *, score: Any, label: Any,
                          passed: Any, explanation: Any, source: Any, vendor_name: Any,
                          vendor_version: Any, document_id: Any = None,
                          judge_trace_id: Any = None, metadata: Any = None,
                          evaluation_id: Any = None, error: str | None) -> str:
        from .evals._write import prepare, write

        fields = prepare(target_id, name, score=score, label=label, passed=passed,
                         source=source, vendor_name=vendor_name,
                         vendor_version=vendor_version, document_id=document_id,
                         judge_trace_id=judge_trace_id, evaluation_id=evaluation_id,
                         error=error)
        if explanation is not None and not isinstance(explanation, str):
            raise ConfigError(f"explanation must be a string or None, got {explanation!r}")
        if metadata is not None and not isinstance(metadata, Mapping):
            raise ConfigError(f"metadata must be a mapping or None, got {metadata!r}")
        conv = self.recorder._conv()
        if fields["error"] is not None:
            fields["error"] = conv.text(fields["error"])
        text = conv.text(explanation) if explanation is not None else None
        meta = conv.convert(dict(metadata)) if metadata else {}
        if fields["judge_trace_id"] is not None:
            self.flush()  # the judge's calls are summed from its stored trace
        return write(self._store.engine, fields, explanation=text, metadata=meta)

    def evaluations(
        self,
        trace_id: str | None = None,
        *,
        name: str | None = None,
        vendor_name: str | None = None,
        source: EvaluationSource | str | None = None,
        judge_provider: str | None = None,
        judge_model: str | None = None,
        min_judge_tokens: int | None = None,
        since: datetime | None = None,
        limit: int = 100,
    ) -> list[Evaluation]:
        """Evaluations, newest first: of one trace, or filtered by name, vendor, source,
        the judge's provider or model, the judge's total tokens (at least
        ``min_judge_tokens``) and creation time."""
        return evaluations(
            self._store.engine, str(trace_id) if trace_id is not None else None, name=name,
            vendor_name=vendor_name, source=source, judge_provider=judge_provider,
            judge_model=judge_model, min_judge_tokens=min_judge_tokens, since=since,
            limit=limit)

    def _evaluation(self, evaluation_id: str) -> Evaluation | None:
        from .query._evaluations import evaluation_by_id

        return evaluation_by_id(self._store.engine, evaluation_id)

    # -- context manager -------------------------------------------------------

    def __enter__(self) -> Trail:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Trail({self.url!r})"


class _ReadOnlySink:
    """The sink of a read-only Trail: there is nothing to write and nowhere to."""

    def offer(self, record: Any) -> bool:
        return False

    def flush(self, timeout_s: float = 10.0) -> bool:
        return True

    def close(self, timeout_s: float = 10.0) -> bool:
        return True

    def stats(self) -> dict[str, Any]:
        return {}


class ManualRun:
    """Handle for a run opened with :meth:`Trail.run`."""

    def __init__(self, recorder: Recorder, run_id: str) -> None:
        self._recorder = recorder
        self.id = run_id
        self.outputs: Any = None

    def set_outputs(self, outputs: Any) -> None:
        """What the block produced (stored when it ends)."""
        self.outputs = outputs

    def event(self, name: str, data: Any = None) -> None:
        """Keep a custom event on the run."""
        self._recorder.add_event(self.id, name, data)
