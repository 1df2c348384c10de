"""Child process for the crash test: flush 10,000 records, then die by SIGKILL mid-write.

usage: _child_crash.py <database url> <spool dir> <ids file>
The ids of the flushed records are written (and fsynced) to <ids file> once
``flush`` returned True; the process then keeps offering so that the writer thread
is inside a transaction when the kill arrives.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ragtrail.store import open_store
from ragtrail.writer import BackgroundWriter, WriterConfig
from reliability._factory import make_record

FLUSHED = 10_000


def main() -> None:
    url, spool_dir, ids_path = sys.argv[1], sys.argv[2], sys.argv[3]
    writer = BackgroundWriter(lambda: open_store(url), WriterConfig(spool_dir=spool_dir))
    records = [make_record("crash") for _ in range(FLUSHED)]
    for start in range(0, FLUSHED, 1_000):  # in steps the queue can hold
        if not all(writer.offer(record) for record in records[start:start + 1_000]):
            sys.exit(3)
        if not writer.flush(120):
            sys.exit(4)
    with open(ids_path, "w") as handle:
        handle.write("\n".join(record.id for record in records))
        handle.flush()
        os.fsync(handle.fileno())
    # Keep the writer busy, and kill the process from another thread after a while.
    threading.Timer(1.3, os.kill, (os.getpid(), signal.SIGKILL)).start()
    while True:
        writer.offer(make_record("after"))
        time.sleep(0.0002)


if __name__ == "__main__":
    main()
