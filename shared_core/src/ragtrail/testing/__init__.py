"""Test your instrumentation without a database: capture records in memory and assert.

Like ``structlog.testing.capture_logs``: a :class:`CapturingTrail` stands where a
:class:`ragtrail.Trail` would (both adapters accept it: it has a ``recorder``), keeps
every finished run as the :class:`~ragtrail.schemas.CapturedRun` the writer would have
stored, and answers simple questions about them::

    from ragtrail.testing import capture_records
    from ragtrail_langchain import RagtrailCallbackHandler

    with capture_records() as captured:
        chain.invoke("what is WAL?", config={"callbacks": [RagtrailCallbackHandler(captured)]})
    assert [run.kind.value for run in captured.runs()] == ["chain", "retriever", "llm"]
    assert captured.llm_calls()[0].token_usage.input_tokens == 12

Records are what the Recorder hands its sink: redacted, bounded and priced exactly as in
production; nothing is written anywhere. As with the background writer, records are
built off the callbacks (when they are read, here), not while the chain runs.
Thread-safe: callbacks may run in any thread.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from ..capture import CaptureConfig, PricerLike, Recorder
from ..redaction import Redactor
from ..schemas import AppContext, CapturedRun, DocStage, DocumentLink, LLMMetadata, Run, RunKind
from ..schemas.flat import AnyRecord
from ..sink import (
    LightRecord,
    ListSink,
    PermanentStoreError,
    PreparedBatch,
    StoreCapabilities,
    TransientStoreError,
)

__all__ = ["CapturingTrail", "FakeStore", "ListSink", "capture_records"]


class CapturingTrail:
    """A stand-in for :class:`ragtrail.Trail` that keeps records in memory.

    Args:
        config, redactor, pricer, app: as for :class:`ragtrail.capture.Recorder` (the
            defaults are a Trail's: default limits, no redaction rules, genai-prices).
    """

    def __init__(
        self,
        *,
        config: CaptureConfig | None = None,
        redactor: Redactor | None = None,
        pricer: PricerLike | None = None,
        app: AppContext | None = None,
    ) -> None:
        self.sink = _CapturingSink()
        self.recorder = Recorder(self.sink, config=config, redactor=redactor, pricer=pricer,
                                 app=app)

    @property
    def records(self) -> list[CapturedRun]:
        """Every finished run, in the order they finished."""
        return self.sink.snapshot()

    def runs(self, *, kind: RunKind | str | None = None, name: str | None = None,
             trace_id: str | None = None) -> list[Run]:
        """The finished runs, in start order (a trace's runs depth-first, like lineage),
        optionally only those of one kind, name or trace."""
        wanted = RunKind(kind) if kind is not None else None
        found = [r.run for r in self.records
                 if (wanted is None or r.run.kind is wanted)
                 and (name is None or r.run.name == name)
                 and (trace_id is None or r.run.trace_id == trace_id)]
        return sorted(found, key=lambda run: run.path)

    def run(self, name: str) -> Run:
        """The one finished run named ``name``; ``LookupError`` for none or several."""
        found = self.runs(name=name)
        if len(found) != 1:
            raise LookupError(f"{len(found)} runs named {name!r}, expected one: "
                              f"{sorted({r.name for r in self.runs()})}")
        return found[0]

    def llm_calls(self) -> list[LLMMetadata]:
        """The model calls' metadata, in the start order of their runs."""
        by_id = {r.run.id: r.llm for r in self.records if r.llm is not None}
        return [by_id[run.id] for run in self.runs() if run.id in by_id]

    def links(self, stage: DocStage | str | None = None) -> list[DocumentLink]:
        """Links between runs and documents (retrieved, reranked, in_prompt), optionally
        of one stage, in the start order of their runs and then by rank."""
        wanted = DocStage(stage) if stage is not None else None
        order = {run.id: i for i, run in enumerate(self.runs())}
        found = [link for r in self.records for link in r.links
                 if wanted is None or link.stage is wanted]
        return sorted(found, key=lambda link: (order.get(link.run_id, -1), link.rank))

    def trace_ids(self) -> list[str]:
        """The distinct trace ids, in the order their first run started."""
        return list(dict.fromkeys(run.trace_id for run in self.runs()))

    def clear(self) -> None:
        """Forget the records captured so far (open runs stay open)."""
        self.sink.clear()

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Nothing to wait for (a Trail's flush, for code written against one)."""
        return True

    def close(self, timeout_s: float = 10.0) -> bool:
        """Store runs still open as ``abandoned`` (as a Trail does) and refuse later ones."""
        self.recorder.abandon_all()
        return self.sink.close(timeout_s)

    def __enter__(self) -> CapturingTrail:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _CapturingSink:
    """A :class:`~ragtrail.sink.LightSink` keeping what it is offered in memory, in order:
    light records are built when the records are read (once each)."""

    def __init__(self) -> None:
        self._taken: list[CapturedRun | LightRecord] = []
        self._closed = False
        self._lock = threading.Lock()

    def offer(self, record: CapturedRun) -> bool:
        """Keep a built record (refused after close)."""
        return self._keep(record)

    def offer_light(self, record: LightRecord) -> bool:
        """Keep a light record, built when read (refused after close)."""
        return self._keep(record)

    def _keep(self, record: CapturedRun | LightRecord) -> bool:
        with self._lock:
            if self._closed:
                return False
            self._taken.append(record)
            return True

    @property
    def records(self) -> list[CapturedRun]:
        """The records taken so far (a copy), built."""
        return self.snapshot()

    def snapshot(self) -> list[CapturedRun]:
        """The records taken so far (a copy), built; a record that cannot be built raises
        (a bug in capture, which the background writer would count as dropped)."""
        with self._lock:
            taken = list(self._taken)
        return [r if isinstance(r, CapturedRun) else r.build() for r in taken]

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Nothing to wait for."""
        return True

    def close(self, timeout_s: float = 10.0) -> bool:
        """Refuse later offers."""
        with self._lock:
            self._closed = True
        return True

    def clear(self) -> None:
        """Forget the records taken so far."""
        with self._lock:
            self._taken.clear()

    def stats(self) -> dict[str, Any]:
        """How many records were taken."""
        with self._lock:
            return {"offered": len(self._taken), "stored": len(self._taken)}


@contextmanager
def capture_records(**kwargs: Any) -> Iterator[CapturingTrail]:
    """A :class:`CapturingTrail` for the ``with`` block, closed at its end (runs still
    open become ``abandoned`` records). Keyword arguments go to :class:`CapturingTrail`."""
    trail = CapturingTrail(**kwargs)
    try:
        yield trail
    finally:
        trail.close()


class FakeStore:
    """A store in memory that fails on command, declaring every capability, so a
    :class:`~ragtrail.writer.BackgroundWriter` on it takes every path: ``fail_next``
    writes fail transiently (retried), ``down`` fails every write (records spill to the
    spool, replayed once it is up), ids in ``poison`` are rejected for good
    (dead-lettered); ``rows`` holds what was stored by id, ``resets`` counts
    ``reset_after_fork`` calls. Writes come from the writer's one thread."""

    capabilities = StoreCapabilities(flat_records=True, prepare_ahead=True, fork_reset=True)

    def __init__(self) -> None:
        self.rows: dict[str, AnyRecord] = {}
        self.poison: set[str] = set()
        self.down, self.fail_next, self.resets, self.closed = False, 0, 0, False

    def write_batch(self, records: Sequence[AnyRecord]) -> None:
        """Store ``records`` by id, or fail as told."""
        if self.down or self.fail_next > 0:
            self.fail_next = max(0, self.fail_next - 1)
            raise TransientStoreError("fake store: unavailable")
        if any(record.id in self.poison for record in records):
            raise PermanentStoreError("fake store: poison record")
        self.rows.update((record.id, record) for record in records)

    def prepare_batch(self, records: Sequence[AnyRecord]) -> PreparedBatch:
        """Nothing to prepare: the records as they are."""
        return PreparedBatch(records)

    def write_prepared(self, batch: PreparedBatch) -> None:
        """As :meth:`write_batch`."""
        self.write_batch(batch.records)

    def reset_after_fork(self) -> None:
        """Count the call (a forked child's writer makes it)."""
        self.resets += 1

    def close(self) -> None:
        """Remember that the store was closed."""
        self.closed = True
