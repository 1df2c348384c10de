"""Shared parts: timing statistics, machine facts, PostgreSQL schemas, sizes."""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import sqlite3
import statistics
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import quote

PG_ENV = "RAGTRAIL_BENCH_POSTGRES_URL"
PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

#: Packages whose versions go into the results.
VERSIONED = ("ragtrail", "ragtrail-langchain", "ragtrail-llamaindex", "langchain-core",
             "llama-index-core", "sqlalchemy", "pydantic", "psycopg", "langfuse",
             "openinference-instrumentation-langchain",
             "openinference-instrumentation-llama-index", "opentelemetry-sdk", "mlflow-skinny")


@dataclass(frozen=True)
class Sizes:
    """How much each benchmark does. ``quick()`` is for the smoke test."""

    overhead_rounds: int = 12
    overhead_block: int = 30
    ingest_runs: int = 60_000
    ingest_pairs: int = 3
    drain_backlog: int = 60_000
    drain_rate: int = 2_000
    drain_fresh_s: int = 10
    scale_traces: int = 100_000
    scale_samples: int = 200
    memory_invocations: int = 20_000
    memory_warmup: int = 1_000
    instruction_invocations: int = 20
    startup_runs: int = 15
    export_traces: int = 10_000
    critical_invocations: int = 2_000
    critical_warmup: int = 50
    bytes_invocations: int = 10_000
    bytes_warmup: int = 50

    @classmethod
    def quick(cls) -> Sizes:
        return cls(overhead_rounds=2, overhead_block=2, ingest_runs=300, ingest_pairs=1,
                   drain_backlog=300, drain_rate=300, drain_fresh_s=1, scale_traces=60,
                   scale_samples=5, memory_invocations=30, memory_warmup=5,
                   instruction_invocations=1, startup_runs=1, export_traces=10,
                   critical_invocations=5, critical_warmup=2, bytes_invocations=10,
                   bytes_warmup=2)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def summary(samples_s: Sequence[float]) -> dict[str, float]:
    """median, p90 and mean in milliseconds, and the sample count."""
    ordered = sorted(samples_s)
    return {
        "median_ms": statistics.median(ordered) * 1e3,
        "p90_ms": percentile(ordered, 0.9) * 1e3,
        "mean_ms": statistics.fmean(ordered) * 1e3,
        "n": len(ordered),
    }


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank-with-interpolation percentile of sorted ``ordered``."""
    if not ordered:
        return float("nan")
    pos = (len(ordered) - 1) * q
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in VERSIONED:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    found["sqlite"] = sqlite3.sqlite_version
    return found


def machine() -> dict[str, Any]:
    cpu = platform.processor() or ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as info:
        cpu = next((line.split(":", 1)[1].strip() for line in info
                    if line.startswith("model name")), cpu)
    memory_gib = None
    with contextlib.suppress(OSError, ValueError), open("/proc/meminfo", encoding="utf-8") as info:
        kib = int(next(line.split()[1] for line in info if line.startswith("MemTotal")))
        memory_gib = round(kib / 1024 / 1024, 1)
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": memory_gib,
            "os": platform.platform(), "python": platform.python_version()}


def pg_base_url() -> str:
    return os.environ.get(PG_ENV) or PG_DEFAULT


def pg_unreachable(url: str) -> str | None:
    """None when the server answers, else why not (printed as the skip reason)."""
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
        engine.dispose()
    except Exception as exc:
        return f"PostgreSQL at {url} is not reachable ({type(exc).__name__}); set {PG_ENV}"
    return None


def pg_server_version(url: str) -> str | None:
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            text = conn.execute(sa.text("show server_version")).scalar_one()
        engine.dispose()
        return str(text)
    except Exception:
        return None


def schema_url(base: str, schema: str) -> str:
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options={quote(f'-csearch_path={schema}')}"


@contextlib.contextmanager
def pg_schema(base: str, *, keep: str | None = None) -> Iterator[str]:
    """URL of a fresh PostgreSQL schema, dropped afterwards (``keep``: a named one, kept)."""
    import sqlalchemy as sa

    schema = keep or f"rt_bench_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(base)
    with engine.begin() as conn:
        conn.execute(sa.text(f'create schema if not exists "{schema}"'))
    try:
        yield schema_url(base, schema)
    finally:
        if keep is None:
            with engine.begin() as conn:
                conn.execute(sa.text(f'drop schema if exists "{schema}" cascade'))
        engine.dispose()


def say(message: str) -> None:
    """Progress on stderr-like stdout, flushed (benchmarks run for minutes)."""
    print(message, flush=True)
