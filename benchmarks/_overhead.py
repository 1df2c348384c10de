"""Overhead per invocation: every configuration interleaved in one process run.

Each round runs one block of ``block`` invocations per configuration, in an order that
rotates every round, so machine drift (frequency, other load) falls on all of them
alike. A block ends with the configuration's flush; its time is spread over the block's
invocations, so persistence is part of the cost. Ratios compare medians (and p90s)
with the no-callback configuration of the same workload.
"""

from __future__ import annotations

import gc
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._common import Sizes, say, summary
from ._tools import Config, open_tools

BASELINE = "none"


def measure(workload: Callable[[list[Any]], Any], configs: list[Config], *, rounds: int,
            block: int) -> dict[str, list[float]]:
    """Per-invocation seconds (flush share included) for each configuration."""
    samples: dict[str, list[float]] = {c.name: [] for c in configs}
    for config in configs:  # warm-up: imports, caches, first connections
        _block(workload, config, block)
    for index in range(rounds):
        shift = index % len(configs)
        for config in configs[shift:] + configs[:shift]:
            samples[config.name].extend(_block(workload, config, block))
    return samples


def _block(workload: Callable[[list[Any]], Any], config: Config, block: int) -> list[float]:
    block = min(block, config.max_block or block)
    gc.collect()
    config.enter()
    try:
        times = []
        for _ in range(block):
            start = time.perf_counter()
            workload(config.callbacks)
            times.append(time.perf_counter() - start)
        start = time.perf_counter()
        config.flush()
        share = (time.perf_counter() - start) / block
    finally:
        config.exit()
        config.reset()
    return [t + share for t in times]


def report(samples: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    stats = {name: summary(values) for name, values in samples.items() if values}
    base = stats.get(BASELINE)
    for entry in stats.values():
        if base:
            entry["ratio_median"] = entry["median_ms"] / base["median_ms"]
            entry["ratio_p90"] = entry["p90_ms"] / base["p90_ms"]
    return stats


def run(sizes: Sizes, work_dir: Path, *, pg_url: str | None, competitors: bool,
        frameworks: tuple[str, ...] = ("langchain", "llamaindex")) -> dict[str, Any]:
    from . import _lc, _li

    modules = {"langchain": _lc, "llamaindex": _li}
    out: dict[str, Any] = {}
    with open_tools(work_dir, pg_url=pg_url, with_competitors=competitors) as tools:
        for framework in frameworks:
            module = modules[framework]
            configs = module.configs(tools)
            result: dict[str, Any] = {"configs": [c.name for c in configs],
                                      "notes": {c.name: c.note for c in configs if c.note}}
            workloads = module.workloads()
            # After every import: LangChain re-enables its deprecation warnings when loaded,
            # and OpenInference triggers one on every call.
            warnings.simplefilter("ignore")
            for workload_name, workload in workloads.items():
                say(f"overhead {framework} {workload_name}: {len(configs)} configurations")
                samples = measure(workload, configs, rounds=sizes.overhead_rounds,
                                  block=sizes.overhead_block)
                result[workload_name] = report(samples)
                _print(framework, workload_name, result[workload_name])
            out[framework] = result
        out["skipped"] = dict(tools.skipped)
        out["ragtrail_stats"] = {name: trail.stats() for name, trail in tools.trails.items()}
    for name, reason in out["skipped"].items():
        say(f"  skipped {name}: {reason}")
    return out


def _print(framework: str, workload: str, stats: dict[str, dict[str, float]]) -> None:
    for name, entry in stats.items():
        say(f"  {framework:10} {workload:7} {name:17} median {entry['median_ms']:8.3f} ms"
            f"  p90 {entry['p90_ms']:8.3f} ms  x{entry.get('ratio_median', float('nan')):.2f}"
            f" (p90 x{entry.get('ratio_p90', float('nan')):.2f})")
