"""Child process for tests/writer/test_trail_exit.py: leaves without closing its Trail.

usage: _trail_exit_child.py <sqlite url> (background | sync | fork)

``background`` / ``sync``: one finished run that was never flushed and one still open
when the interpreter exits. ``fork``: the parent holds a run open while a forked
multiprocessing child records a run of its own and exits; then the parent finishes
its run and exits, still without closing.
"""

from __future__ import annotations

import multiprocessing
import sys

from ragtrail import Trail
from ragtrail.schemas import Framework, RunKind


def _child_run(trail: Trail) -> None:
    with trail.run("child-run", inputs={"q": "in the child"}):
        pass


def main() -> None:
    url, mode = sys.argv[1], sys.argv[2]
    trail = Trail(url, background=mode != "sync")
    if mode == "fork":
        with trail.run("parent-run", inputs={"q": "in the parent"}):
            process = multiprocessing.get_context("fork").Process(target=_child_run,
                                                                   args=(trail,))
            process.start()
            process.join(60)
            if process.exitcode != 0:
                sys.exit(f"child exited with {process.exitcode}")
        return
    with trail.run("finished-run", inputs={"q": "done"}):
        pass
    trail.recorder.start_run("open-at-exit", kind=RunKind.CHAIN, name="open-at-exit",
                             framework=Framework.MANUAL, inputs={"q": "never ended"})


if __name__ == "__main__":
    main()
