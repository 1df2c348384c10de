"""Child process for exit-hook tests: offers records, then leaves without closing the writer.

usage: _child_exit.py <ids file> <spool dir> <count> (plain | multiprocessing)
In ``plain`` mode the interpreter exits normally (atexit must flush); in
``multiprocessing`` mode a forked multiprocessing child offers the records and
returns (multiprocessing's finalizers must flush).
"""

from __future__ import annotations

import multiprocessing
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ragtrail.writer import BackgroundWriter, WriterConfig
from reliability._factory import make_record
from reliability._stores import FileStore


def _offer(writer: BackgroundWriter, count: int, prefix: str) -> None:
    for _ in range(count):
        writer.offer(make_record(prefix))


def main() -> None:
    ids_path, spool_dir, count, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    # A long flush interval: nothing is written before exit unless the hooks do it.
    config = WriterConfig(spool_dir=spool_dir, flush_interval_s=3600, batch_max_events=100_000,
                          max_queue_events=100_000, shutdown_timeout_s=10)
    writer = BackgroundWriter(lambda: FileStore(ids_path), config)
    if mode == "plain":
        _offer(writer, count, "exit")
        return
    ctx = multiprocessing.get_context("fork")
    child = ctx.Process(target=_offer, args=(writer, count, "mpchild"))
    child.start()
    child.join(30)
    sys.exit(child.exitcode or 0)


if __name__ == "__main__":
    main()
