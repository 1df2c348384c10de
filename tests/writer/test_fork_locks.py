"""A lock held by another thread at fork() time does not hang the child's capture.

fork() copies each lock as it is; one held by a parent thread stays held in the child,
where that thread does not exist. The locks every callback goes through are renewed in
the child (``ragtrail.capture.fork_safe_lock``).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from lc_support import build_rag_chain
from li_support import UsageLLM, build_index, reset_llamaindex
from ragtrail import Trail
from ragtrail.guard import error_counter
from ragtrail_langchain import RagtrailCallbackHandler
from ragtrail_llamaindex import instrument

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


@pytest.fixture
def clean_llamaindex() -> Iterator[None]:
    yield from reset_llamaindex()


@contextmanager
def held(locks: list[Any]) -> Iterator[None]:
    """Another thread holds every lock in ``locks`` until the block ends."""
    taken, release = threading.Event(), threading.Event()

    def hold() -> None:
        for lock in locks:
            lock.acquire()
        taken.set()
        release.wait(60)
        for lock in reversed(locks):
            lock.release()

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    assert taken.wait(10)
    try:
        yield
    finally:
        release.set()
        thread.join(10)


def _in_forked_child(work: Callable[[], bool]) -> int:
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = 0 if work() else 2
        finally:
            os._exit(code)
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)  # hung on a lock inherited held
    os.waitpid(pid, 0)
    return -1


def test_langchain_capture_in_a_child_forked_while_its_locks_were_held(
        sqlite_url: str) -> None:
    with Trail(sqlite_url) as trail:
        handler = RagtrailCallbackHandler(trail)
        chain = build_rag_chain()
        chain.invoke("what is wal", config={"callbacks": [handler]})
        locks = [trail.recorder._lock, error_counter._lock]

        def child() -> bool:
            answer = chain.invoke("what is wal", config={"callbacks": [handler]})
            return bool(answer) and trail.flush(20)

        with held(locks):
            assert _in_forked_child(child) == 0


def test_llamaindex_capture_in_a_child_forked_while_its_locks_were_held(
        sqlite_url: str, clean_llamaindex: None) -> None:
    with Trail(sqlite_url) as trail:
        instrument(trail)
        engine = build_index().as_query_engine(llm=UsageLLM())
        engine.query("what is wal")
        locks = [trail.recorder._lock]

        def child() -> bool:
            return bool(str(engine.query("what is wal"))) and trail.flush(20)

        with held(locks):
            assert _in_forked_child(child) == 0


def test_an_owner_collected_while_the_registry_is_held_does_not_deadlock() -> None:
    # The collector may run an owner's weak-reference callback on a thread that holds
    # the registry lock (inside fork_safe_lock, whose allocations can trigger it).
    import gc

    from ragtrail.testing.internals import forksafe

    class Owner:
        pass

    def collect_inside() -> None:
        owner = Owner()
        forksafe.fork_safe_lock(owner)
        with forksafe._registry_lock:
            del owner
            gc.collect()  # runs the callback here, the lock held by this thread
        forksafe.fork_safe_lock(Owner())  # purges the collected owner's entry

    thread = threading.Thread(target=collect_inside, daemon=True)
    thread.start()
    thread.join(10)
    assert not thread.is_alive(), "the registry's callback waited on its own lock"
