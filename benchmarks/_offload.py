"""Could the capture's work move off the application's core? Measured, LangChain invoke.

The overhead bound leaves ragtrail about a quarter of the chain's own time. Doing the
capture in-process costs twice the chain (BENCHMARKS.md); the remaining design is to
hand each callback's arguments to another process, which does the capture and storage
on the machine's second core. This benchmark measures that design, interleaved like the
overhead benchmark (its ``measure``), with these configurations:

- ``none``: the chain, no callbacks.
- ``none_second_core_busy``: the same, while another process spins on the second core:
  what any work done beside the application costs it on this machine.
- ``handoff_only``: a handler pickling every callback's arguments (what a process
  boundary needs) and a thread sending them in batches through a pipe to a process
  that reads and discards them: the least an out-of-process capture costs.
- ``handoff_to_json``: the same with pydantic-core's Rust ``to_json`` instead of pickle,
  the fastest serializer at hand (it loses the objects' types, so a worker could not
  run the framework extractors on them: a lower bound only).
- ``offload_replay``: the same, but the process replays every callback into a
  ``RagtrailCallbackHandler`` on its own SQLite ``Trail``: the whole capture, off the
  application's interpreter. Its flush waits for the process to store everything.
- ``ragtrail_sqlite``: ragtrail as shipped, in-process, for comparison.

The prototype handler lacks what a shipped one needs (the application's clock and
context carried over, unpicklable arguments, back-pressure, a dead process); it can
only be cheaper than one that has them.
"""

from __future__ import annotations

import multiprocessing
import pickle
import threading
import time
import warnings
from collections import deque
from pathlib import Path
from typing import Any

from ._common import Sizes, say
from ._overhead import measure, report
from ._tools import Config

_CALLBACKS = ("on_chain_start", "on_chain_end", "on_chain_error", "on_retriever_start",
              "on_retriever_end", "on_retriever_error", "on_chat_model_start",
              "on_llm_start", "on_llm_end", "on_llm_error", "on_llm_new_token")
_FEED_S = 0.005
_ACK_TIMEOUT_S = 120.0


def _spin(busy: Any, stop: Any) -> None:
    """Burn the CPU while ``busy`` is set; idle otherwise (runs in its own process)."""
    while not stop.is_set():
        if not busy.wait(0.05):
            continue
        while busy.is_set():
            for _ in range(20_000):
                pass


def _worker(conn: Any, db_path: str | None) -> None:
    """Read batches of pickled callbacks; replay them into ragtrail if ``db_path``."""
    handler = trail = None
    if db_path is not None:
        from ragtrail import Trail
        from ragtrail_langchain import RagtrailCallbackHandler

        trail = Trail(f"sqlite:///{db_path}")
        handler = RagtrailCallbackHandler(trail)
    replayed = 0
    while True:
        for event in pickle.loads(conn.recv_bytes()):
            if isinstance(event, tuple):  # ("flush" | "stop", None)
                if trail is not None and not trail.flush(_ACK_TIMEOUT_S):
                    raise RuntimeError(f"worker flush timed out: {trail.stats()}")
                conn.send_bytes(pickle.dumps(replayed))
                if event[0] == "stop":
                    if trail is not None:
                        trail.close()
                    return
                continue
            if handler is not None:
                name, args, kwargs = pickle.loads(event)
                getattr(handler, name)(*args, **kwargs)
            replayed += 1


class Offload:
    """The application's side: a handler that pickles, a thread that sends, a process."""

    def __init__(self, db_path: Path | None, *, as_json: bool = False) -> None:
        from langchain_core.callbacks import BaseCallbackHandler
        from pydantic_core import to_json

        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_worker, daemon=True,
                                        args=(child, str(db_path) if db_path else None))
        self._process.start()
        self._queue: deque[Any] = deque()
        self._feeder = threading.Thread(target=self._feed, daemon=True)
        self._feeder.start()
        queue = self._queue

        def forward(name: str) -> Any:
            if as_json:
                def callback(self: Any, *args: Any, **kwargs: Any) -> None:
                    queue.append(to_json((name, args, kwargs), fallback=str))
            else:
                def callback(self: Any, *args: Any, **kwargs: Any) -> None:
                    queue.append(pickle.dumps((name, args, kwargs), pickle.HIGHEST_PROTOCOL))
            return callback

        methods: dict[str, Any] = {name: forward(name) for name in _CALLBACKS}
        self.handler = type("OffloadHandler", (BaseCallbackHandler,),
                            {**methods, "run_inline": True})()

    def _feed(self) -> None:
        while True:
            time.sleep(_FEED_S)
            batch = []
            while self._queue:
                batch.append(self._queue.popleft())
            if batch:
                self._conn.send_bytes(pickle.dumps(batch, pickle.HIGHEST_PROTOCOL))
                if isinstance(batch[-1], tuple) and batch[-1][0] == "stop":
                    return

    def flush(self, command: str = "flush") -> int:
        """Wait until the process has taken (and stored) everything; its event count."""
        self._queue.append((command, None))
        if not self._conn.poll(_ACK_TIMEOUT_S):
            raise RuntimeError("the offload process did not answer")
        count: int = pickle.loads(self._conn.recv_bytes())
        return count

    def close(self) -> int:
        count = self.flush("stop")
        self._process.join(10)
        return count


def run(sizes: Sizes, work_dir: Path) -> dict[str, Any]:
    """Every configuration interleaved on the LangChain invoke workload."""
    from ragtrail import Trail
    from ragtrail_langchain import RagtrailCallbackHandler

    from ._lc import workloads

    context = multiprocessing.get_context("spawn")
    busy, stop = context.Event(), context.Event()
    spinner = context.Process(target=_spin, args=(busy, stop), daemon=True)
    spinner.start()
    handoff = Offload(None)
    handoff_json = Offload(None, as_json=True)
    replay = Offload(work_dir / "offload.db")
    trail = Trail(f"sqlite:///{work_dir / 'inprocess.db'}")
    configs = [
        Config("none"),
        Config("none_second_core_busy", enter=busy.set, exit=busy.clear,
               note="another process spins on the second core during the block"),
        Config("handoff_only", callbacks=[handoff.handler], flush=handoff.flush,
               note="callbacks pickled and piped to a process that discards them"),
        Config("handoff_to_json", callbacks=[handoff_json.handler], flush=handoff_json.flush,
               note="callbacks serialized by to_json and piped to a process that discards them"),
        Config("offload_replay", callbacks=[replay.handler], flush=replay.flush,
               note="callbacks pickled and piped to a process that captures and stores"),
        Config("ragtrail_sqlite", callbacks=[RagtrailCallbackHandler(trail)],
               flush=lambda: trail.flush(60.0)),
    ]
    invoke = workloads()["invoke"]
    warnings.simplefilter("ignore")
    say(f"offload langchain invoke: {len(configs)} configurations")
    try:
        samples = measure(invoke, configs, rounds=sizes.overhead_rounds,
                          block=sizes.overhead_block)
    finally:
        events = {"handoff_only": handoff.close(), "handoff_to_json": handoff_json.close(),
                  "offload_replay": replay.close()}
        trail.close()
        stop.set()
        busy.clear()
        spinner.join(5)
    result = report(samples)
    for name, entry in result.items():
        say(f"  {name:22} median {entry['median_ms']:7.3f} ms  x{entry['ratio_median']:.2f}"
            f" (p90 x{entry['ratio_p90']:.2f})")
    return {"langchain_invoke": result, "events_received": events,
            "stored": {"offload_replay": _runs(work_dir / "offload.db"),
                       "ragtrail_sqlite": _runs(work_dir / "inprocess.db")},
            "notes": {c.name: c.note for c in configs if c.note}}


def _runs(db_path: Path) -> int:
    import sqlite3

    with sqlite3.connect(db_path) as connection:
        count: int = connection.execute("SELECT count(*) FROM runs").fetchone()[0]
    return count
