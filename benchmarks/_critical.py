"""Critical path: the application thread's own time inside ragtrail per invocation.

The overhead benchmark times whole invocations, the writer's work included (it competes
for the GIL and the cores). This one times only what the application thread spends in
ragtrail's callbacks: every callback method of ragtrail's LangChain handler (``on_*``)
and of its LlamaIndex dispatcher handlers (``span_enter``, ``span_exit``,
``span_drop``, ``handle``) is wrapped, on the instance, by a clock that adds
its time to the current invocation. The writer (storing into SQLite on its thread) is
running, but its work is not counted, except where it holds the GIL while a callback
waits for it: that is in the wall-clock figure, not in the CPU-time one.

Two clocks per callback: ``wall`` (``perf_counter_ns``) and ``cpu``
(``thread_time_ns``: the thread's CPU time, which other processes on a loaded machine
do not inflate). The same wrapping around a handler that does nothing (``noop_handler``)
gives the floor of the measurement itself (the clocks and the wrapper). Reported per
invocation: p50, p99 and mean, in microseconds.
"""

from __future__ import annotations

import gc
import inspect
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._common import percentile, say

FRAMEWORKS = ("langchain", "llamaindex")
#: The LlamaIndex dispatcher handlers' callback methods.
LI_METHODS = ("span_enter", "span_exit", "span_drop", "handle")


class CallbackClock:
    """Adds the time spent in wrapped methods to the current invocation's totals.

    A wrapped method called from inside another (a handler calling its own methods)
    is counted once, by the outermost one.
    """

    def __init__(self) -> None:
        self.wall_ns = 0
        self.cpu_ns = 0
        self.calls = 0
        self._depth = 0

    def reset(self) -> tuple[int, int, int]:
        """(wall ns, cpu ns, calls) since the last reset."""
        totals = (self.wall_ns, self.cpu_ns, self.calls)
        self.wall_ns = self.cpu_ns = self.calls = 0
        return totals

    def wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        wall, cpu = time.perf_counter_ns, time.thread_time_ns

        def timed(*args: Any, **kwargs: Any) -> Any:
            if self._depth:
                return fn(*args, **kwargs)
            self._depth = 1
            w, c = wall(), cpu()
            try:
                return fn(*args, **kwargs)
            finally:
                self.cpu_ns += cpu() - c
                self.wall_ns += wall() - w
                self.calls += 1
                self._depth = 0

        return timed

    def instrument(self, obj: Any, names: list[str] | tuple[str, ...]) -> None:
        """Wrap ``obj``'s methods ``names`` on the instance (pydantic models included)."""
        for name in names:
            method = getattr(obj, name, None)
            if callable(method):
                object.__setattr__(obj, name, self.wrap(method))


def _callback_names(obj: Any) -> list[str]:
    return [name for name, _ in inspect.getmembers(type(obj), callable)
            if name.startswith("on_")]


def _langchain(config: str, work_dir: Path, clock: CallbackClock) -> tuple[Any, Any, Any]:
    """(workload, flush, close) of LangChain invoke with ``config``'s handler timed."""
    from . import _lc

    invoke = _lc.workloads()["invoke"]
    if config == "noop_handler":
        from langchain_core.callbacks import BaseCallbackHandler

        handler: Any = BaseCallbackHandler()
        flush = close = _nothing
    else:
        from ragtrail import Trail
        from ragtrail_langchain import RagtrailCallbackHandler

        trail = Trail(f"sqlite:///{work_dir / 'critical_lc.db'}")
        handler = RagtrailCallbackHandler(trail)
        flush, close = (lambda: trail.flush(120.0)), trail.close
    clock.instrument(handler, _callback_names(handler))
    callbacks = [handler]
    return (lambda: invoke(callbacks)), flush, close


def _llamaindex(config: str, work_dir: Path, clock: CallbackClock) -> tuple[Any, Any, Any]:
    """(workload, flush, close) of a LlamaIndex query with ``config``'s handlers timed."""
    from llama_index.core.instrumentation import get_dispatcher

    from . import _li

    query = _li.workloads()["invoke"]
    root = get_dispatcher()
    before = [*root.span_handlers, *root.event_handlers]
    if config == "noop_handler":
        _li.attach_noop_handlers()
        flush = _nothing

        def close() -> None:
            _detach(root, before)
    else:
        from ragtrail import Trail
        from ragtrail_llamaindex import instrument, uninstrument

        trail = Trail(f"sqlite:///{work_dir / 'critical_li.db'}")
        instrument(trail)
        flush = (lambda: trail.flush(120.0))  # noqa: E731

        def close() -> None:
            uninstrument(trail)
            trail.close()
    added = [h for h in (*root.span_handlers, *root.event_handlers)
             if not any(h is b for b in before)]
    if not added:
        raise RuntimeError(f"llamaindex {config}: no handler was attached")
    for handler in added:
        clock.instrument(handler, LI_METHODS)
    return (lambda: query([])), flush, close


def _detach(root: Any, before: list[Any]) -> None:
    root.span_handlers = [h for h in root.span_handlers if any(h is b for b in before)]
    root.event_handlers = [h for h in root.event_handlers if any(h is b for b in before)]


def _nothing() -> None:
    return None


def _stats(values_ns: list[int]) -> dict[str, float]:
    ordered = sorted(values_ns)
    return {"p50_us": percentile(ordered, 0.5) / 1e3, "p99_us": percentile(ordered, 0.99) / 1e3,
            "mean_us": sum(ordered) / max(len(ordered), 1) / 1e3, "n": len(ordered)}


def measure(framework: str, config: str, invocations: int, warmup: int,
            work_dir: Path) -> dict[str, Any]:
    """The per-invocation callback time of ``config`` (see module docstring)."""
    clock = CallbackClock()
    setup = _langchain if framework == "langchain" else _llamaindex
    workload, flush, close = setup(config, work_dir, clock)
    try:
        for _ in range(warmup):
            workload()
        flush()
        gc.collect()
        clock.reset()
        wall: list[int] = []
        cpu: list[int] = []
        whole: list[int] = []
        calls = 0
        for _ in range(invocations):
            start = time.perf_counter_ns()
            workload()
            whole.append(time.perf_counter_ns() - start)
            w, c, calls = clock.reset()
            wall.append(w)
            cpu.append(c)
        flush()
    finally:
        close()
    return {"wall": _stats(wall), "cpu": _stats(cpu), "invocation": _stats(whole),
            "callbacks_per_invocation": calls}


def run(invocations: int, warmup: int, work_dir: Path, *,
        frameworks: tuple[str, ...] = FRAMEWORKS) -> dict[str, Any]:
    """{framework: {config: {wall, cpu, invocation, callbacks_per_invocation}}}."""
    out: dict[str, Any] = {"invocations": invocations, "warmup": warmup,
                           "workload": "invoke (LangChain) / query (LlamaIndex)"}
    for framework in frameworks:
        out[framework] = {}
        for config in ("noop_handler", "ragtrail_sqlite"):
            result = measure(framework, config, invocations, warmup, work_dir)
            out[framework][config] = result
            wall, cpu = result["wall"], result["cpu"]
            say(f"  critical path {framework:10} {config:15} wall p50 {wall['p50_us']:8.1f} us"
                f"  p99 {wall['p99_us']:8.1f} us | cpu p50 {cpu['p50_us']:8.1f} us"
                f"  p99 {cpu['p99_us']:8.1f} us | {result['callbacks_per_invocation']} callbacks"
                f" | invocation p50 {result['invocation']['p50_us']:8.1f} us")
    return out
