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
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
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
        for name, value in counts.items():
            say(f"  instructions {framework:10} {name:17} {value / 1e6:8.2f} M  "
                f"x{value / base:.2f}")
    return out


def count(framework: str, config: str, invocations: int, work_dir: Path) -> int:
    """Instructions per invocation of ``config`` (all threads, flush included)."""
    with tempfile.TemporaryDirectory(dir=work_dir, prefix="callgrind-") as tmp:
        command = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
                   f"--callgrind-out-file={tmp}/out.%p", sys.executable, "-m",
                   "benchmarks._instructions", framework, config, str(invocations), tmp]
        env = {**os.environ, "RAGTRAIL_UNDER_CALLGRIND": "1"}
        done = subprocess.run(command, capture_output=True, text=True, check=False, env=env,
                              cwd=Path(__file__).resolve().parent.parent)
        if done.returncode != 0:
            raise RuntimeError(f"callgrind run of {framework}/{config} failed:\n{done.stderr}")
        total = 0
        for path in Path(tmp).glob("out.*"):
            for line in path.read_text().splitlines():
                if line.startswith("totals:"):
                    total += int(line.split()[1])
        if total == 0:
            raise RuntimeError(f"callgrind counted nothing for {framework}/{config}")
        return total // invocations


def _child(framework: str, config: str, invocations: int, work_dir: Path) -> None:
    """Inside valgrind: set up, warm up, count ``invocations``, flush."""
    from . import _lc, _li

    warnings.simplefilter("ignore")
    module = _lc if framework == "langchain" else _li
    workload = module.workloads()["invoke"]
    enter, flush, callbacks = _setup(framework, config, work_dir)
    enter()
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
        from ragtrail.sink import ListSink

        sink = ListSink()
        target: Any = Recorder(sink)

        def flush() -> None:
            sink.records.clear()
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


def _instrumentation(state: str) -> None:
    """Switch callgrind's counting on or off (nothing happens outside valgrind)."""
    if os.environ.get("RAGTRAIL_UNDER_CALLGRIND") != "1":
        return
    subprocess.run(["callgrind_control", "-i", state, str(os.getpid())],
                   capture_output=True, check=True)


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4]))
