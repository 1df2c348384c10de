"""Child process for the multi-process test: write records into a shared database.

usage: _child_multi.py <database url> <spool dir> <prefix> <count> <ids file>
Offers in steps of 2,000 with a flush between (the application's own pacing), closes
the writer, writes the offered ids to <ids file> and the writer's stats as JSON to
stdout. Exit status 0 only if close() reported everything stored.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ragtrail.store import open_store
from ragtrail.writer import BackgroundWriter, WriterConfig
from reliability._factory import make_record

STEP = 2_000


def main() -> None:
    url, spool_dir, prefix, count, ids_path = sys.argv[1:6]
    writer = BackgroundWriter(lambda: open_store(url), WriterConfig(spool_dir=spool_dir),
                              name=url)
    ids: list[str] = []
    for start in range(0, int(count), STEP):
        for _ in range(min(STEP, int(count) - start)):
            record = make_record(prefix)
            if writer.offer(record):
                ids.append(record.id)
        writer.flush(120)
    closed = writer.close(120)
    Path(ids_path).write_text("\n".join(ids))
    print(json.dumps(writer.stats().as_dict()))
    sys.exit(0 if closed else 5)


if __name__ == "__main__":
    main()
