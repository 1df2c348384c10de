"""Memory: resident set growth over many LangChain chain invocations with ragtrail.

After ``memory_warmup`` invocations (imports, caches, pools, the writer's first
batches), the resident set size is sampled every tenth of the run; growth is the
last sample (after a final flush and a garbage collection) minus the first.

The garbage collector's work is timed over the same invocations (``gc.callbacks``):
collections per generation and their time per invocation. Queued records survive
into the oldest generation and trigger full collections, which scan every object the
imported frameworks keep. A tenth as many invocations are then timed again after
``gc.freeze()`` (the application's option, named in the README), and unfrozen.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil

from ._common import Sizes, say
from ._frameworks import QUESTION, support


def _rss_mib() -> float:
    return float(psutil.Process().memory_info().rss) / (1024 * 1024)


@contextmanager
def _gc_clock() -> Iterator[dict[int, list[float]]]:
    """{generation: [collections, seconds]} of the collections inside the block."""
    counts: dict[int, list[float]] = {0: [0, 0.0], 1: [0, 0.0], 2: [0, 0.0]}
    started: dict[int, float] = {}

    def callback(phase: str, info: dict[str, Any]) -> None:
        generation = info["generation"]
        if phase == "start":
            started[generation] = time.perf_counter()
        elif generation in started:
            counts[generation][0] += 1
            counts[generation][1] += time.perf_counter() - started.pop(generation)

    gc.callbacks.append(callback)
    try:
        yield counts
    finally:
        gc.callbacks.remove(callback)


def _gc_summary(counts: dict[int, list[float]], invocations: int) -> dict[str, Any]:
    per = max(invocations, 1)
    return {"invocations": invocations,
            "collections": {str(g): int(c[0]) for g, c in counts.items()},
            "ms_per_invocation": sum(c[1] for c in counts.values()) * 1000 / per,
            "full_ms_per_invocation": counts[2][1] * 1000 / per}


def run(sizes: Sizes, work_dir: Path) -> dict[str, Any]:
    from ragtrail import Trail
    from ragtrail_langchain import RagtrailCallbackHandler

    chain = support("lc_support").build_rag_chain()
    with Trail(f"sqlite:///{work_dir / 'memory.db'}") as trail:
        config = {"callbacks": [RagtrailCallbackHandler(trail)]}
        for _ in range(sizes.memory_warmup):
            chain.invoke(QUESTION, config=config)
        trail.flush(60.0)
        gc.collect()
        samples = [(0, _rss_mib())]
        step = max(1, sizes.memory_invocations // 10)
        start = time.perf_counter()
        with _gc_clock() as collected:
            for i in range(1, sizes.memory_invocations + 1):
                chain.invoke(QUESTION, config=config)
                if i % step == 0:
                    samples.append((i, _rss_mib()))
        elapsed = time.perf_counter() - start
        flushed = trail.flush(120.0)
        gc.collect()
        samples.append((sizes.memory_invocations, _rss_mib()))
        stats = trail.stats()
        gc_default = _gc_summary(collected, sizes.memory_invocations)
        frozen_runs = max(1, sizes.memory_invocations // 10)
        gc.freeze()
        try:
            with _gc_clock() as collected:
                for _ in range(frozen_runs):
                    chain.invoke(QUESTION, config=config)
                trail.flush(120.0)
        finally:
            gc.unfreeze()
        gc_frozen = _gc_summary(collected, frozen_runs)
    growth = samples[-1][1] - samples[0][1]
    say(f"memory: {sizes.memory_invocations:,} invocations after {sizes.memory_warmup:,} warm-up:"
        f" RSS {samples[0][1]:.1f} -> {samples[-1][1]:.1f} MiB (growth {growth:+.1f} MiB),"
        f" peak {max(s[1] for s in samples):.1f} MiB")
    say(f"memory: garbage collection {gc_default['ms_per_invocation']:.3f} ms per invocation"
        f" (full collections {gc_default['full_ms_per_invocation']:.3f} ms,"
        f" {gc_default['collections']}); after gc.freeze()"
        f" {gc_frozen['ms_per_invocation']:.3f} ms"
        f" (full {gc_frozen['full_ms_per_invocation']:.3f})")
    return {"invocations": sizes.memory_invocations, "warmup": sizes.memory_warmup,
            "rss_start_mib": samples[0][1], "rss_end_mib": samples[-1][1],
            "growth_mib": growth, "peak_mib": max(s[1] for s in samples),
            "samples": samples, "seconds": elapsed, "flushed": flushed,
            "stored": stats["writer"].get("stored"), "dropped": stats["writer"].get("dropped"),
            "gc": {"default": gc_default, "frozen": gc_frozen}}
