"""Instructions per invocation, counted by valgrind's callgrind: the same on every run.

Wall-clock ratios on a shared 2-core machine move by several per cent from one run to
the next, more than one optimisation changes them. Instruction counts do not: the same
code on the same inputs executes the same instructions whatever else the machine does
(all threads are counted, so the writer's encoding and SQLite's inserts are included).
They are the A/B measure for a change; the overhead benchmark remains the measure of time
(an instruction in SQLite runs without the GIL, one in Python holds it).

Each configuration runs in its own process under ``valgrind --tool=callgrind`` with
instrumentation off; after the warm-up the process switches it on with
``callgrind_control``, runs the workload ``invocations`` times, flushes, and switches it
off, so imports and set-up are not counted. Configurations: ``none``, ``noop_handler``,
``ragtrail_capture`` (the Recorder handing records to a sink that drops them: capture
alone) and ``ragtrail_sqlite`` (capture and storage, flush included). The difference of
the last two is what storing costs.

The capture-alone sink takes light records (``offer_light``) and drops them, so with a
Recorder that hands light records (fifteenth round) nothing is built in it: it counts
what the application's threads do; building the records is then part of storing. Each
thread is also counted on its own (``--separate-threads=yes``): ``ragtrail_sqlite``
reports the instructions of ragtrail's writer threads (the threads running when the
Trail has started, before any workload) apart from the application's.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Any

from ._common import say

CONFIGS = ("none", "noop_handler", "ragtrail_capture", "ragtrail_sqlite")
FRAMEWORKS = ("langchain", "llamaindex")
#: Invocations before counting starts (stored too: the SQLite configuration keeps them).
WARMUP = 20


def unavailable() -> str | None:
    """Why instructions cannot be counted here, or None."""
    missing = [tool for tool in ("valgrind", "callgrind_control") if shutil.which(tool) is None]
    return f"{' and '.join(missing)} not found (Debian package valgrind)" if missing else None


def run(invocations: int, work_dir: Path, *,
        frameworks: tuple[str, ...] = FRAMEWORKS) -> dict[str, Any]:
    """{framework: {config: instructions per invocation, ...}} for the ``invoke`` workload."""
    reason = unavailable()
    if reason is not None:
        say(f"instructions: skipped: {reason}")
        return {"skipped": reason}
    out: dict[str, Any] = {"invocations": invocations, "workload": "invoke"}
    for framework in frameworks:
        counts = {config: count(framework, config, invocations, work_dir) for config in CONFIGS}
        base = counts["none"]
        out[framework] = {
            name: {"instructions": value, "ratio": value / base} for name, value in counts.items()
        }
        out[framework]["storage_instructions"] = (counts["ragtrail_sqlite"]
                                                  - counts["ragtrail_capture"])
        split = thread_split(framework, invocations, work_dir)
        out[framework]["ragtrail_sqlite_threads"] = split
        for name, value in counts.items():
            say(f"  instructions {framework:10} {name:17} {value / 1e6:8.2f} M  "
                f"x{value / base:.2f}")
        say(f"  instructions {framework:10} ragtrail_sqlite: application threads "
            f"{split['application'] / 1e6:.2f} M, writer threads {split['writer'] / 1e6:.2f} M")
    return out


def count(framework: str, config: str, invocations: int, work_dir: Path) -> int:
    """Instructions per invocation of ``config`` (all threads, flush included)."""
    return sum(_counted(framework, config, invocations, work_dir, threads=False).values())


def thread_split(framework: str, invocations: int, work_dir: Path) -> dict[str, int]:
    """``ragtrail_sqlite``'s instructions per invocation, split between ragtrail's
    writer threads and the application's threads (main and the framework's pools)."""
    counted = _counted(framework, "ragtrail_sqlite", invocations, work_dir, threads=True)
    writer = sum(value for name, value in counted.items() if name == "writer")
    return {"application": sum(counted.values()) - writer, "writer": writer}


def _counted(framework: str, config: str, invocations: int, work_dir: Path, *,
             threads: bool) -> dict[str, int]:
    """Instructions per invocation by thread kind (``writer`` or ``application``; all
    under ``all`` unless ``threads``)."""
    with tempfile.TemporaryDirectory(dir=work_dir, prefix="callgrind-") as tmp:
        command = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
                   f"--separate-threads={'yes' if threads else 'no'}",
                   f"--callgrind-out-file={tmp}/out.%p", sys.executable, "-m",
                   "benchmarks._instructions", framework, config, str(invocations), tmp]
        env = {**os.environ, "RAGTRAIL_UNDER_CALLGRIND": "1"}
        done = subprocess.run(command, capture_output=True, text=True, check=False, env=env,
                              cwd=Path(__file__).resolve().parent.parent)
        if done.returncode != 0:
            raise RuntimeError(f"callgrind run of {framework}/{config} failed:\n{done.stderr}")
        started = json.loads((Path(tmp) / "threads.json").read_text())
        totals: dict[str, int] = {}
        for path in Path(tmp).glob("out.*"):
            # With separate threads the files end in "-<thread number>", numbered in
            # the order threads started: 1 is the main thread, then those the Trail
            # started (all ragtrail's own, checked by the child) before any workload.
            if threads and "-" not in path.name:
                continue  # the file of the run as a whole: no thread's counts
            number = int(path.name.rsplit("-", 1)[1]) if threads else 1
            kind = "writer" if 2 <= number < 2 + len(started) else "application"
            for line in path.read_text().splitlines():
                if line.startswith("totals:"):
                    totals[kind] = totals.get(kind, 0) + int(line.split()[1])
        if not totals:
            raise RuntimeError(f"callgrind counted nothing for {framework}/{config}")
        return {kind: value // invocations for kind, value in totals.items()}


def _child(framework: str, config: str, invocations: int, work_dir: Path) -> None:
    """Inside valgrind: set up, warm up, count ``invocations``, flush."""
    from . import _lc, _li

    warnings.simplefilter("ignore")
    module = _lc if framework == "langchain" else _li
    workload = module.workloads()["invoke"]
    enter, flush, callbacks = _setup(framework, config, work_dir)
    enter()
    time.sleep(0.5)  # ragtrail's threads started before any the workload starts
    started = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
    if any(not name.startswith("ragtrail-") for name in started):
        raise RuntimeError(f"threads other than ragtrail's before the workload: {started}")
    (work_dir / "threads.json").write_text(json.dumps(started))
    for _ in range(WARMUP):
        workload(callbacks)
    flush()
    _instrumentation("on")
    for _ in range(invocations):
        workload(callbacks)
    flush()
    _instrumentation("off")


def _setup(framework: str, config: str, work_dir: Path) -> tuple[Any, Any, list[Any]]:
    """(enter, flush, callbacks) of ``config``."""
    if config == "none":
        return _nothing, _nothing, []
    if config == "noop_handler":
        if framework == "langchain":
            from langchain_core.callbacks import BaseCallbackHandler

            return _nothing, _nothing, [BaseCallbackHandler()]
        from ._li import attach_noop_handlers

        return attach_noop_handlers, _nothing, []
    if config == "ragtrail_capture":
        from ragtrail.capture import Recorder

        target: Any = Recorder(_DropSink())
        flush = _nothing
    else:
        from ragtrail import Trail

        target = Trail(f"sqlite:///{work_dir / 'trail.db'}")

        def flush() -> None:
            if not target.flush(120.0):
                raise RuntimeError(f"flush timed out: {target.stats()}")
    if framework == "langchain":
        from ragtrail_langchain import RagtrailCallbackHandler

        return _nothing, flush, [RagtrailCallbackHandler(target)]
    from ragtrail_llamaindex import instrument

    return lambda: instrument(target), flush, []


def _nothing() -> None:
    return None


class _DropSink:
    """Takes every record, light (``offer_light``: never built) or built, and drops it."""

    def offer(self, record: Any) -> bool:
        return True

    def offer_light(self, record: Any) -> bool:
        return True

    def flush(self, timeout_s: float = 10.0) -> bool:
        return True

    def close(self, timeout_s: float = 10.0) -> bool:
        return True

    def stats(self) -> dict[str, int]:
        return {}


def _instrumentation(state: str) -> None:
    """Switch callgrind's counting on or off (nothing happens outside valgrind)."""
    if os.environ.get("RAGTRAIL_UNDER_CALLGRIND") != "1":
        return
    subprocess.run(["callgrind_control", "-i", state, str(os.getpid())],
                   capture_output=True, check=True)


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4]))
