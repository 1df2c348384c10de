"""Hold an exclusive SQLite lock from another process: ``with SqliteLock(path): ...``.

Run as a script it opens the database and prints ``ready``; on ``lock`` from stdin
it runs ``BEGIN EXCLUSIVE`` and prints ``locked``; on ``release`` (or when stdin
closes) it commits and exits. The process starts ahead, so taking the lock is instant.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys


class SqliteLock:
    """A separate process holding ``BEGIN EXCLUSIVE`` on a SQLite file until released."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._process: subprocess.Popen[str] | None = self._spawn()

    def _spawn(self) -> subprocess.Popen[str]:
        process = subprocess.Popen([sys.executable, __file__, self.path],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   text=True, bufsize=1)
        assert process.stdout is not None
        if process.stdout.readline().strip() != "ready":
            raise RuntimeError("locker did not start")
        return process

    def acquire(self) -> None:
        if self._process is None:
            self._process = self._spawn()
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write("lock\n")
        self._process.stdin.flush()
        line = self._process.stdout.readline().strip()
        if line != "locked":
            raise RuntimeError(f"locker failed: {line!r}")

    def release(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        assert process.stdin is not None
        try:
            process.stdin.write("release\n")
            process.stdin.close()
        except BrokenPipeError:
            pass
        process.wait(30)

    def __enter__(self) -> SqliteLock:
        self.acquire()
        return self

    def __exit__(self, *_: object) -> None:
        self.release()


def _main() -> None:
    conn = sqlite3.connect(sys.argv[1], timeout=60, isolation_level=None)
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "lock":
        return
    conn.execute("BEGIN EXCLUSIVE")
    print("locked", flush=True)
    sys.stdin.readline()
    conn.execute("COMMIT")
    conn.close()


if __name__ == "__main__":
    _main()
