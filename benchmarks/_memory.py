"""Memory: resident set growth over many LangChain chain invocations with ragtrail.

After ``memory_warmup`` invocations (imports, caches, pools, the writer's first
batches), the resident set size is sampled every tenth of the run; growth is the
last sample (after a final flush and a garbage collection) minus the first.
"""

from __future__ import annotations

import gc
import time
from pathlib import Path
from typing import Any

import psutil

from ._common import Sizes, say
from ._frameworks import QUESTION, support


def _rss_mib() -> float:
    return float(psutil.Process().memory_info().rss) / (1024 * 1024)


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
        for i in range(1, sizes.memory_invocations + 1):
            chain.invoke(QUESTION, config=config)
            if i % step == 0:
                samples.append((i, _rss_mib()))
        elapsed = time.perf_counter() - start
        flushed = trail.flush(120.0)
        gc.collect()
        samples.append((sizes.memory_invocations, _rss_mib()))
        stats = trail.stats()
    growth = samples[-1][1] - samples[0][1]
    say(f"memory: {sizes.memory_invocations:,} invocations after {sizes.memory_warmup:,} warm-up:"
        f" RSS {samples[0][1]:.1f} -> {samples[-1][1]:.1f} MiB (growth {growth:+.1f} MiB),"
        f" peak {max(s[1] for s in samples):.1f} MiB")
    return {"invocations": sizes.memory_invocations, "warmup": sizes.memory_warmup,
            "rss_start_mib": samples[0][1], "rss_end_mib": samples[-1][1],
            "growth_mib": growth, "peak_mib": max(s[1] for s in samples),
            "samples": samples, "seconds": elapsed, "flushed": flushed,
            "stored": stats["writer"].get("stored"), "dropped": stats["writer"].get("dropped")}
