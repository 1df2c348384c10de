"""Queries at scale: ``traces`` RAG traces (10 runs each: 1,000,000 runs by default).

The database is generated once per (generator version, size) and kept: SQLite as a
file in the cache directory, PostgreSQL as a schema named after the same key, both
marked complete only at the end (an interrupted generation starts again). Then each
query is timed on ``scale_samples`` random inputs (p50, p90, max) on both backends.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ._common import Sizes, percentile, pg_schema, pg_unreachable, say, schema_url
from ._data import GENERATOR_VERSION, MODELS, RUNS_PER_TRACE, START, TraceFactory, user_hash

#: Records per write_batch while generating (one transaction each).
GENERATE_BATCH = 5_000
_MARK = "bench_scale_complete"


def _key(traces: int) -> str:
    return f"scale_v{GENERATOR_VERSION}_{traces}"


def _complete(engine: sa.Engine) -> bool:
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table(_MARK):
            return False
        return conn.execute(sa.text(f"select count(*) from {_MARK}")).scalar_one() == 1


def _generate(url: str, traces: int) -> float:
    from ragtrail.store import open_store

    store = open_store(url)
    factory = TraceFactory(traces)
    start = time.perf_counter()
    try:
        pending = []
        for i in range(traces):
            pending.extend(factory.trace(i))
            if len(pending) >= GENERATE_BATCH:
                store.write_batch(pending)
                pending = []
            if i and i % 10_000 == 0:
                say(f"  generated {i:,} traces ({time.perf_counter() - start:.0f} s)")
        store.write_batch(pending)
        with store.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text("analyze"))
            else:
                conn.execute(sa.text("analyze"))
            conn.execute(sa.text(f"create table {_MARK} (version integer)"))
            conn.execute(sa.text(f"insert into {_MARK} values ({GENERATOR_VERSION})"))
    finally:
        store.close()
    return time.perf_counter() - start


def _timed(fn: Callable[[Any], Any], inputs: list[Any]) -> dict[str, Any]:
    """Two passes over ``inputs``: the first reads pages from disk as it goes (as a
    lookup of old data would), the second finds them in the cache (as a hot one would).
    p50/p90 are of the second pass; the first pass's p50 is reported beside them."""
    passes: list[list[float]] = []
    sizes: list[int] = []
    for _ in range(2):
        times = []
        for value in inputs:
            start = time.perf_counter()
            result = fn(value)
            times.append(time.perf_counter() - start)
            sizes.append(len(result) if hasattr(result, "__len__") else 1)
        passes.append(sorted(times))
    first, ordered = passes
    return {"p50_ms": statistics.median(ordered) * 1e3, "p90_ms": percentile(ordered, 0.9) * 1e3,
            "max_ms": ordered[-1] * 1e3, "n": len(ordered),
            "first_pass_p50_ms": statistics.median(first) * 1e3,
            "first_pass_p90_ms": percentile(first, 0.9) * 1e3,
            "mean_result_size": statistics.fmean(sizes)}


def _queries(url: str, traces: int, samples: int) -> dict[str, Any]:
    from ragtrail import query
    from ragtrail.store import open_store

    store = open_store(url)
    engine = store.engine
    rng = random.Random(5)
    factory = TraceFactory(traces)
    try:
        with engine.connect() as conn:
            runs = conn.execute(sa.text("select count(*) from runs")).scalar_one()
            llm_ids = [row[0] for row in conn.execute(
                sa.text("select run_id from llm_calls order by run_id limit :n"),
                {"n": samples * 50})]
        run_ids = rng.sample(llm_ids, min(samples, len(llm_ids)))
        docs = [factory.corpus[rng.randrange(factory.corpus_size)].document_id
                for _ in range(samples)]
        hashes = [factory.corpus[rng.randrange(factory.corpus_size)].content_hash
                  for _ in range(samples)]
        day = [START + timedelta(days=rng.randrange(89)) for _ in range(samples)]
        out: dict[str, Any] = {"runs": runs}
        out["lineage"] = _timed(lambda rid: query.lineage(engine, rid).runs, run_ids)
        out["answers_using_id"] = _timed(lambda d: query.answers_using(engine, d), docs)
        out["answers_using_hash"] = _timed(lambda h: query.answers_using(engine, h), hashes)
        popular = factory.corpus[0].document_id
        out["answers_using_most_used"] = _timed(lambda d: query.answers_using(engine, d),
                                                [popular] * 3)
        out["answers_using_most_used_newest20"] = _timed(
            lambda d: query.answers_using(engine, d, limit=20), [popular] * 3)
        few = max(3, samples // 10)
        filters: dict[str, Callable[[Any], Any]] = {
            "traces_newest": lambda _: query.traces(engine, limit=20),
            "traces_app": lambda _: query.traces(engine, limit=20, app_name="docs-search"),
            "traces_user": lambda u: query.traces(engine, limit=20, user_hash=user_hash(u)),
            "traces_errors": lambda _: query.traces(engine, limit=20, status="error"),
            "traces_model": lambda _: query.traces(engine, limit=20, model=MODELS[1][1]),
            "traces_day": lambda d: query.traces(engine, limit=20, since=d,
                                                 until=d + timedelta(days=1)),
        }
        for name, fn in filters.items():
            inputs = day[:few] if name == "traces_day" else [rng.randrange(5000)
                                                             for _ in range(few)]
            out[name] = _timed(fn, inputs)
        heavy = max(2, min(3, samples // 40))
        for name, group in (("usage_model", "model"), ("usage_day", "day"),
                            ("usage_model_day", "model,day")):
            out[name] = _timed(lambda g: query.usage(engine, group_by=g), [group] * heavy)
        return out
    finally:
        store.close()


def _backend(name: str, url: str, engine_url: str, traces: int, samples: int) -> dict[str, Any]:
    engine = sa.create_engine(engine_url)
    try:
        fresh = not _complete(engine)
    finally:
        engine.dispose()
    result: dict[str, Any] = {"cached": not fresh}
    if fresh:
        say(f"scale {name}: generating {traces:,} traces ({traces * RUNS_PER_TRACE:,} runs)")
        result["generate_s"] = _generate(url, traces)
        say(f"scale {name}: generated in {result['generate_s']:.0f} s")
    result.update(_queries(url, traces, samples))
    for key, value in result.items():
        if isinstance(value, dict):
            say(f"  {name:10} {key:24} p50 {value['p50_ms']:9.2f} ms  p90 {value['p90_ms']:9.2f}"
                f" ms  (rows {value['mean_result_size']:.0f})")
    return result


def run(sizes: Sizes, cache_dir: Path, *, pg_url: str | None) -> dict[str, Any]:
    traces = sizes.scale_traces
    out: dict[str, Any] = {"traces": traces, "runs": traces * RUNS_PER_TRACE,
                           "generator_version": GENERATOR_VERSION, "key": _key(traces)}
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"{_key(traces)}.db"
    if path.exists() and not _complete(sa.create_engine(f"sqlite:///{path}")):
        path.unlink()  # an interrupted generation
    out["sqlite"] = _backend("sqlite", f"sqlite:///{path}", f"sqlite:///{path}", traces,
                             sizes.scale_samples)
    reason = pg_unreachable(pg_url) if pg_url else "no PostgreSQL URL"
    if reason is not None:
        out["postgresql"] = {"skipped": reason}
        say(f"scale postgresql skipped: {reason}")
        return out
    schema = f"rt_bench_{_key(traces)}"
    with pg_schema(pg_url, keep=schema) as url:  # type: ignore[arg-type]
        out["postgresql"] = _backend("postgresql", url, schema_url(pg_url, schema), traces,
                                     sizes.scale_samples)
    out["postgresql"]["schema"] = schema
    return out
