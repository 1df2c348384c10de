"""SQLite WAL checkpoints on a thread of their own, off the writer's path.

In WAL mode every commit appends pages to the ``-wal`` file; a checkpoint copies them
back into the database file and fsyncs both. SQLite runs it inside the commit that
crosses ``wal_autocheckpoint`` pages (1000 by default), so the writing thread pays for
it: about a fifth of the writer's time while a backlog drains. Here the writing
connection's threshold is raised to a backstop (:data:`AUTOCHECKPOINT_PAGES`) and, after
each batch, a daemon thread runs a ``PASSIVE`` checkpoint on a connection of its own.
SQLite does that work in C without the GIL, so it overlaps the next batch's Python
work on the other core. A passive checkpoint never waits for a lock and never blocks
a writer or a reader; when it cannot finish, the backstop still bounds the WAL.

Only an optimisation: a checkpoint that fails is logged at debug level and the next
batch tries again.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading

from sqlalchemy.engine import Engine

__all__ = ["AUTOCHECKPOINT_PAGES", "WalCheckpointer"]

logger = logging.getLogger("ragtrail.store")

#: ``PRAGMA wal_autocheckpoint`` of store connections: the writer only checkpoints
#: itself when the background checkpoints fall this far behind (~40 MB of 4 KiB pages).
AUTOCHECKPOINT_PAGES = 10_000


class WalCheckpointer:
    """Runs ``PRAGMA wal_checkpoint(PASSIVE)`` after writes, on one daemon thread.

    ``poke()`` after a commit; ``stop()`` when the store closes. The thread starts at the
    first poke (a store that only reads never has one) and again in a forked child.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._stopped = False
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self.checkpoints = 0  # completed checkpoint calls, for tests and diagnostics

    def poke(self) -> None:
        """Ask for a checkpoint soon (coalesced with any already asked for)."""
        with self._lock:
            if self._stopped:
                return
            if self._thread is None or self._pid != os.getpid():  # first write, or a child
                self._pid = os.getpid()
                self._wake = threading.Event()
                self._thread = threading.Thread(
                    target=self._run, name="ragtrail-wal-checkpoint", daemon=True)
                self._thread.start()
            wake = self._wake
        wake.set()

    def stop(self, timeout_s: float = 1.0) -> None:
        """Stop the thread, waiting at most ``timeout_s`` for a checkpoint under way."""
        with self._lock:
            self._stopped = True
            thread, pid = self._thread, self._pid
        self._wake.set()
        if thread is not None and pid == os.getpid() and thread is not threading.current_thread():
            thread.join(timeout_s)

    def _run(self) -> None:
        wake = self._wake
        while True:
            wake.wait()
            wake.clear()
            if self._stopped:
                return
            try:
                with contextlib.closing(self._engine.raw_connection()) as connection, \
                        contextlib.closing(connection.cursor()) as cursor:
                    cursor.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                self.checkpoints += 1
            except Exception as exc:  # never let a checkpoint failure escape
                logger.debug("background WAL checkpoint failed: %s", exc)
