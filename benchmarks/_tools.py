"""The configurations compared: none, a no-op handler, ragtrail, and the tools users
would pick instead (optional ``bench`` dependency group; each is skipped with its
reason when it cannot be imported or set up offline).

Nothing here reaches the network: Langfuse exports to a closed port on 127.0.0.1,
OpenTelemetry to an in-memory exporter, MLflow to a file store in a temporary directory.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import socket
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from ._common import pg_schema, pg_unreachable

#: MLflow takes tens of milliseconds per invocation: fewer per block keeps the run short
#: (the rounds still interleave it with the others).
MLFLOW_BLOCK = 5


def _nothing() -> None:
    return None


@dataclass
class Config:
    """One way of running the workload. ``flush`` is timed and spread over the block."""

    name: str
    callbacks: list[Any] = field(default_factory=list)
    enter: Callable[[], None] = _nothing
    exit: Callable[[], None] = _nothing
    flush: Callable[[], Any] = _nothing
    reset: Callable[[], None] = _nothing
    note: str = ""
    #: At most this many invocations per block (for very slow tools; None: the block size).
    max_block: int | None = None


def imported(tools: Tools, name: str, module: str) -> ModuleType | None:
    """``module``, or None with the reason recorded as configuration ``name``'s skip."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        tools.skipped[name] = f"{module} cannot be imported: {exc}"
        return None


def closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Tools:
    """Sets up every backend once per process run and tears it down at the end.

    ``skipped`` maps a configuration name to the reason it is not measured.
    """

    def __init__(self, work_dir: Path, *, pg_url: str | None, with_competitors: bool) -> None:
        self.work_dir = work_dir
        self.skipped: dict[str, str] = {}
        self._stack = contextlib.ExitStack()
        self.trails: dict[str, Any] = {}
        self.otel: Any = None
        self.langfuse: Any = None
        self.langfuse_provider: Any = None
        self.mlflow: Any = None
        self._open_trails(pg_url)
        if with_competitors:
            self._open_otel()
            self._open_langfuse()
            self._open_mlflow()
        else:
            for name in ("langfuse", "openinference", "mlflow"):
                self.skipped[name] = "comparison tools not requested"

    # -- ragtrail ----------------------------------------------------------------

    def _open_trails(self, pg_url: str | None) -> None:
        from ragtrail import Trail

        sqlite = Trail(f"sqlite:///{self.work_dir / 'overhead.db'}")
        self._stack.callback(sqlite.close)
        self.trails["ragtrail_sqlite"] = sqlite
        reason = pg_unreachable(pg_url) if pg_url else "no PostgreSQL URL"
        if reason is not None:
            self.skipped["ragtrail_pg"] = reason
            return
        url = self._stack.enter_context(pg_schema(pg_url))  # type: ignore[arg-type]
        pg = Trail(url)
        self._stack.callback(pg.close)
        self.trails["ragtrail_pg"] = pg

    def trail_flush(self, name: str) -> Callable[[], Any]:
        trail = self.trails[name]

        def flush() -> None:
            if not trail.flush(60.0):
                raise RuntimeError(f"{name}: flush timed out: {trail.stats()}")

        return flush

    # -- OpenTelemetry + OpenInference ------------------------------------------

    def _open_otel(self) -> None:
        try:
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
            from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
                InMemorySpanExporter,
            )
        except ImportError as exc:
            self.skipped["openinference"] = f"opentelemetry-sdk not installed ({exc})"
            return
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        # A queue large enough for a whole block: dropped spans would be work not measured.
        provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=1 << 17))
        self._stack.callback(provider.shutdown)
        self.otel = (provider, exporter)

    # -- Langfuse ----------------------------------------------------------------

    def _open_langfuse(self) -> None:
        try:
            from langfuse import Langfuse
            from opentelemetry.sdk.trace import TracerProvider
        except ImportError as exc:
            self.skipped["langfuse"] = f"langfuse not installed ({exc})"
            return
        # Its exporter's connection errors are expected here: keep them out of the output.
        for name in ("langfuse", "opentelemetry.exporter.otlp.proto.http.trace_exporter",
                     "opentelemetry.sdk.trace.export", "urllib3"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
        provider = TracerProvider()
        try:
            self.langfuse = Langfuse(
                public_key="pk-lf-bench", secret_key="sk-lf-bench",
                base_url=f"http://127.0.0.1:{closed_port()}", tracer_provider=provider,
                timeout=1,
            )
        except Exception as exc:
            self.skipped["langfuse"] = f"Langfuse client could not start: {exc}"
            return
        self.langfuse_provider = provider
        self._stack.callback(provider.shutdown)

    # -- MLflow ------------------------------------------------------------------

    def _open_mlflow(self) -> None:
        # MLflow 3 refuses its file store unless asked: a local file store is what an
        # offline user would point it at (a SQLite backend would need a server-side schema).
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        # Traces are written on the caller's thread: its asynchronous logging's flush
        # waits in steps of about a second, which would be measured as cost without
        # being work. Persistence is still included, inside each invocation.
        os.environ.setdefault("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "false")
        try:
            import mlflow
        except ImportError as exc:
            self.skipped["mlflow"] = f"mlflow not installed ({exc})"
            return
        for name in ("mlflow", "alembic"):
            logging.getLogger(name).setLevel(logging.ERROR)
        store = Path(tempfile.mkdtemp(prefix="mlruns-", dir=self.work_dir))
        try:
            mlflow.set_tracking_uri(store.as_uri())
            mlflow.set_experiment("ragtrail-bench")
        except Exception as exc:
            self.skipped["mlflow"] = f"MLflow file store could not be set up: {exc}"
            return
        self.mlflow = mlflow

    def mlflow_flush(self) -> None:
        flush = getattr(self.mlflow, "flush_trace_async_logging", None)
        if callable(flush):
            flush(terminate=False)

    def close(self) -> None:
        self._stack.close()


@contextlib.contextmanager
def open_tools(work_dir: Path, *, pg_url: str | None,
               with_competitors: bool) -> Iterator[Tools]:
    os.environ.setdefault("MLFLOW_TRACKING_URI", (work_dir / "mlruns").as_uri())
    tools = Tools(work_dir, pg_url=pg_url, with_competitors=with_competitors)
    try:
        yield tools
    finally:
        tools.close()
