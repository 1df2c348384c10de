"""The global switch (instrument / RAGTRAIL_TRACING), recording once, ambient parents."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.callbacks import dispatch_custom_event
from langchain_core.runnables import RunnableConfig, RunnableLambda

from lc_support import FakeOpenAIChat, build_rag_chain, open_trail, stored
from ragtrail import NotFoundError, Trail
from ragtrail.capture import Recorder
from ragtrail.schemas import DocStage, RunKind
from ragtrail.sink import ListSink
from ragtrail_langchain import RagtrailCallbackHandler, instrument, uninstrument

trail = pytest.fixture(name="trail")(open_trail)

QUESTION = "What does VACUUM do in SQLite?"
TESTS_DIR = Path(__file__).resolve().parents[1]


@pytest.fixture
def switched_off() -> Iterator[None]:
    """Leave the process uninstrumented whatever the test does."""
    uninstrument()
    yield
    uninstrument()


def test_instrument_records_every_run_in_every_thread(trail: Trail, switched_off: None) -> None:
    chain = build_rag_chain()
    handler = instrument(trail)
    main_rid, thread_rid = uuid.uuid4(), uuid.uuid4()
    chain.invoke(QUESTION, config={"run_id": main_rid})
    assert handler.last_trace_id == str(main_rid)
    # A plain thread starts with an empty context: a ContextVar-based switch misses it.
    worker = threading.Thread(target=chain.invoke, args=(QUESTION,),
                              kwargs={"config": {"run_id": thread_rid}})
    worker.start()
    worker.join()
    for rid in (main_rid, thread_rid):
        lineage = stored(trail, rid)
        assert len(lineage.runs) == 12 and len(lineage.llm_calls) == 1

    uninstrument()
    later = uuid.uuid4()
    chain.invoke(QUESTION, config={"run_id": later})
    trail.flush()
    with pytest.raises(NotFoundError):
        trail.lineage(str(later))


def _retry_and_event_chain() -> Any:
    def step(text: str, config: RunnableConfig) -> str:
        dispatch_custom_event("seen", {"text": text}, config=config)
        return text

    model = FakeOpenAIChat(fail_times=1).with_retry(
        retry_if_exception_type=(ConnectionError,), stop_after_attempt=2,
        wait_exponential_jitter=False)
    return RunnableLambda(step, name="step") | model


def _assert_recorded_once(trail: Trail, rid: uuid.UUID, handlers: list[Any]) -> None:
    build_rag_chain().invoke(QUESTION, config={"callbacks": handlers, "run_id": rid})
    lineage = stored(trail, rid)
    assert len(lineage.runs) == 12
    assert len(lineage.documents_at(DocStage.RETRIEVED)) == 4
    assert len(lineage.documents_at(DocStage.RERANKED)) == 2
    assert len(lineage.documents_at(DocStage.IN_PROMPT)) == 2
    other = uuid.uuid4()
    _retry_and_event_chain().invoke("ping", config={"callbacks": handlers, "run_id": other})
    lineage = stored(trail, other)
    step = next(r for r in lineage.runs if r.name == "step")
    # RunnableRetry's run carries the wrapped model's name, as a chain.
    retry = next(r for r in lineage.runs if r.kind is RunKind.CHAIN and r.name != "step"
                 and r.parent_id is not None)
    assert [e["name"] for e in step.events] == ["seen"]
    assert retry.retries == 1
    assert [r.kind for r in lineage.runs].count(RunKind.LLM) == 2


def test_same_handler_attached_twice_records_once(trail: Trail) -> None:
    handler = RagtrailCallbackHandler(trail)
    _assert_recorded_once(trail, uuid.uuid4(), [handler, handler])


def test_two_handlers_on_one_trail_record_once(trail: Trail) -> None:
    _assert_recorded_once(trail, uuid.uuid4(),
                          [RagtrailCallbackHandler(trail), RagtrailCallbackHandler(trail)])


def test_explicit_handler_and_instrument_record_once(trail: Trail, switched_off: None) -> None:
    instrument(trail)
    _assert_recorded_once(trail, uuid.uuid4(), [RagtrailCallbackHandler(trail)])
    assert trail.recorder.stats()["duplicate_starts"] == 0  # LangChain added no second one


def test_run_started_inside_a_langchain_step_joins_its_trace(trail: Trail) -> None:
    inner_ids: list[str] = []

    def step(text: str) -> str:
        # Code of another framework (or a manual run) with no parent given.
        with trail.run("lookup", kind="tool", inputs=text) as run:
            inner_ids.append(run.id)
        return text

    rid = uuid.uuid4()
    RunnableLambda(step, name="step").invoke("x", config={
        "callbacks": [RagtrailCallbackHandler(trail)], "run_id": rid})
    lineage = stored(trail, rid)
    assert [r.name for r in lineage.runs] == ["step", "lookup"]
    assert lineage.run(inner_ids[0]).parent_id == str(rid)


_SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from lc_support import build_rag_chain
print(build_rag_chain().invoke("What does VACUUM do in SQLite?", config={{"run_id": {rid!r}}}))
print("imported" if "ragtrail_langchain" in sys.modules else "not imported")
"""


def _python(code: str, tracing: str, url: str) -> list[str]:
    env = {**os.environ, "RAGTRAIL_TRACING": tracing, "RAGTRAIL_URL": url}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "Error processing line" not in done.stderr  # a broken .pth would say so
    return done.stdout.splitlines()


def test_env_var_records_without_any_code_change(sqlite_url: str) -> None:
    # The application never imports ragtrail_langchain: the installed .pth does it.
    rid = str(uuid.uuid4())
    out = _python(_SCRIPT.format(tests=str(TESTS_DIR), rid=rid), "true", sqlite_url)
    assert out[-1] == "imported"
    with Trail(sqlite_url) as reader:
        lineage = reader.lineage(rid)
    assert len(lineage.runs) == 12 and lineage.question == QUESTION
    assert lineage.answer == out[0] == f"The context answers: {QUESTION}"


@pytest.mark.parametrize("value", ["", "0", "false"])
def test_env_var_off_loads_nothing(sqlite_url: str, value: str) -> None:
    out = _python("import sys; print('ragtrail_langchain' in sys.modules)", value, sqlite_url)
    assert out == ["False"]


def test_handler_accepts_a_bare_recorder() -> None:
    # For tests and custom pipelines: a Recorder feeding any Sink.
    sink = ListSink()
    handler = RagtrailCallbackHandler(Recorder(sink))
    RunnableLambda(lambda x: x * 2, name="double").invoke(2, config={"callbacks": [handler]})
    (record,) = sink.records
    assert (record.run.name, record.run.outputs, record.run.id) == (
        "double", 4, handler.last_trace_id)


@pytest.mark.parametrize("wrong", ["sqlite:///ragtrail.db", object()])
def test_a_handler_given_something_else_than_a_trail_says_so_at_once(wrong: object) -> None:
    with pytest.raises(TypeError, match=r"expects a ragtrail\.Trail"):
        RagtrailCallbackHandler(wrong)


def test_a_default_database_that_fails_is_tried_once_and_never_breaks_the_app() -> None:
    # A server that takes connections and drops them: each attempt to open the default
    # Trail is one connection (one connect timeout, were the server silent instead).
    attempts = []
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            attempts.append(1)
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    url = f"postgresql+psycopg://postgres@127.0.0.1:{server.getsockname()[1]}/test"
    code = ("import logging, sys\n"
            "logging.basicConfig()\n"
            f"sys.path.insert(0, {str(TESTS_DIR)!r})\n"
            "from lc_support import build_rag_chain\n"
            "chain = build_rag_chain()\n"
            "for _ in range(3):\n"
            "    print(chain.invoke('What does VACUUM do in SQLite?'))\n")
    try:
        env = {**os.environ, "RAGTRAIL_TRACING": "true", "RAGTRAIL_URL": url}
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                              text=True, timeout=120, check=False)
    finally:
        stop.set()
        thread.join(5)
        server.close()
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["The context answers: What does VACUUM do in SQLite?"] * 3
    # One attempt (libpq may open a second connection without SSL), not one per callback.
    assert 1 <= len(attempts) <= 2, len(attempts)
    assert done.stderr.count("the default ragtrail Trail could not be opened") == 1


_FAILING_DEFAULT = """
import logging, sys
sys.path.insert(0, {tests!r})
{logging_setup}
from lc_support import build_rag_chain
from ragtrail_langchain import RagtrailCallbackHandler
chain = build_rag_chain()
for i in range(12):
    # The environment's handler, and handlers made per request without a trail.
    config = {{"callbacks": [RagtrailCallbackHandler()]}} if i % 2 else {{}}
    print(chain.invoke("What does VACUUM do in SQLite?", config=config))
"""


@pytest.mark.parametrize("logging_setup", [
    "", "logging.basicConfig()", "logging.basicConfig(filename={log!r})"],
    ids=["logging-not-configured", "logging-to-stderr", "logging-to-a-file"])
def test_a_default_trail_that_cannot_open_says_so_once_on_stderr(
        tmp_path: Path, logging_setup: str) -> None:
    log = tmp_path / "app.log"
    code = _FAILING_DEFAULT.format(tests=str(TESTS_DIR),
                                   logging_setup=logging_setup.format(log=str(log)))
    url = f"sqlite:///{tmp_path / 'missing-directory' / 'ragtrail.db'}"
    env = {**os.environ, "RAGTRAIL_TRACING": "true", "RAGTRAIL_URL": url}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    # The application's output is its own; stderr has one line saying what failed.
    assert done.stdout.splitlines() == ["The context answers: What does VACUUM do in SQLite?"] * 12
    (line,) = [text for text in done.stderr.splitlines() if "could not be opened" in text]
    if not logging_setup:
        assert done.stderr.splitlines() == [line]
    # Through the application's handler when it writes to stderr, else written directly.
    assert line.startswith("ERROR:ragtrail.langchain:the default ragtrail Trail could not"
                           if logging_setup == "logging.basicConfig()" else
                           "ragtrail: error: the default ragtrail Trail could not be opened")
    assert "missing-directory does not exist" in line and "capture is off" in line
    if "filename" in logging_setup:  # the application's log has it too
        assert "the default ragtrail Trail could not be opened" in log.read_text()
