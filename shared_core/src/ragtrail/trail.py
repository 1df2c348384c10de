"""``Trail``: the one object a user creates. Capture in, queries out.

    trail = Trail()                                   # $RAGTRAIL_URL, else ./ragtrail.db
    trail = Trail("sqlite:///runs.db", app_name="support-bot", app_version="1.4.0")
    trail = Trail("postgresql+psycopg://postgres@127.0.0.1:5432/test")
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from os import PathLike
from types import TracebackType
from typing import Any

from .capture import CaptureConfig, Recorder
from .errors import ConfigError
from .export._live import ExportingStore, LiveExporter, close_all
from .pricing import ModelPrice, Pricer
from .query import (
    DocumentUsage,
    Lineage,
    TraceSummary,
    UsageRow,
    answers_using,
    lineage,
    traces,
    usage,
)
from .redaction import RedactionConfig, Redactor
from .schemas import AppContext, Framework, RunKind
from .sink import Sink, SyncSink
from .store import SqlStore, open_store
from .writer import BackgroundWriter, WriterConfig, forget_owner, track_owner

__all__ = ["Trail"]

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
        """
        for name, value, kind in (("capture", capture, CaptureConfig),
                                  ("redaction", redaction, RedactionConfig),
                                  ("writer", writer, WriterConfig)):
            if value is not None and not isinstance(value, kind):
                raise ConfigError(f"Trail({name}=...) takes a {kind.__name__} or None, "
                                  f"got {type(value).__name__}")
        self._store: SqlStore = open_store(url, sqlite_synchronous=sqlite_synchronous,
                                           sqlite_cache_mib=sqlite_cache_mib)
        self.url = self._store.url
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
        self._pricer = Pricer(overrides=prices)
        self.recorder = Recorder(
            self.sink,
            config=capture,
            redactor=self.redactor,
            pricer=self._pricer,
            app=AppContext(app_name=app_name, app_version=app_version, request_type=request_type),
        )
        self._closed = False
        self._lock = threading.Lock()
        # At interpreter exit a Trail never closed is closed before its writer: its
        # open runs are stored as abandoned, a SyncSink's buffer is written.
        track_owner(self)

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
        forget_owner(self)
        self.recorder.abandon_all()
        ok = self.sink.close(timeout_s)
        close_all(self._exporters)  # each within its own shutdown_timeout_s
        self._store.close()
        self._pricer.close()
        return ok

    def _close_at_exit(self) -> None:
        self.close(self._exit_timeout_s)

    def _after_fork_in_child(self) -> None:
        self.recorder.after_fork_in_child()

    def stats(self) -> dict[str, Any]:
        """Capture and writer counters: offered, stored, dropped by reason, errors, ..."""
        writer_stats: Any = self.sink.stats()
        as_dict = getattr(writer_stats, "as_dict", None)
        stats = {"capture": self.recorder.stats(),
                 "writer": as_dict() if callable(as_dict) else dict(writer_stats)}
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
    ) -> list[TraceSummary]:
        """Recent root runs, newest first. ``user_id`` is matched through its keyed hash."""
        return traces(
            self._store.engine, limit=limit, since=since, until=until, app_name=app_name,
            user_hash=self.redactor.hash_user(user_id) if user_id is not None else None,
            session_id=session_id, status=status, model=model,
        )

    def answers_using(self, document: str, *, limit: int | None = None) -> list[DocumentUsage]:
        """Traces whose answers used ``document`` (its id or content hash), with the stage,
        newest first; ``limit`` keeps only the newest ``limit`` of them."""
        return answers_using(self._store.engine, document, limit=limit)

    def usage(
        self,
        group_by: Sequence[str] | str = ("model",),
        *,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[UsageRow]:
        """Tokens and cost grouped by model, provider, app_name, user, session, day, template."""
        return usage(self._store.engine, group_by=group_by, since=since, until=until)

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
