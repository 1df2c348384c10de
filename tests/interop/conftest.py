"""Interop tests: ragtrail's OTLP export read back by real receivers (Arize Phoenix, the
MLflow tracking server), each started on 127.0.0.1 for the session.

They run with ``make test-interop`` (which installs the ``interop`` dependency group and
sets RAGTRAIL_INTEROP=1); plain ``make test`` skips them with that reason. A receiver
that is not installed or cannot start skips its tests with the reason.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))
sys.path.insert(0, str(ROOT / "tests"))

#: A receiver gets this long to answer its health check (Phoenix runs its migrations
#: first: over a minute on a busy two-core machine).
START_TIMEOUT_S = float(os.environ.get("RAGTRAIL_INTEROP_START_TIMEOUT_S", "240"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("RAGTRAIL_INTEROP") == "1":
        return
    skip = pytest.mark.skip(reason="interop tests run with `make test-interop`")
    for item in items:
        if "tests/interop/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(skip)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """A receiver process on 127.0.0.1, stopped (by its pid) at the end of the session."""

    def __init__(self, name: str, argv: list[str], env: Mapping[str, str], health_url: str,
                 workdir: Path) -> None:
        self.name = name
        self.workdir = workdir
        self.log_path = workdir / f"{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(argv, env={**os.environ, **env}, stdout=self._log,
                                        stderr=subprocess.STDOUT, cwd=workdir,
                                        start_new_session=True)
        self.health_url = health_url

    def wait_ready(self) -> str | None:
        """None once the health check answers 200, else why not (for the skip)."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return f"{self.name} exited with {self.process.returncode}: {self.tail()}"
            try:
                with urllib.request.urlopen(self.health_url, timeout=2) as response:
                    if response.status == 200:
                        return None
            except OSError:
                pass
            time.sleep(0.5)
        return f"{self.name} did not answer {self.health_url} within {START_TIMEOUT_S:.0f} s: " \
               f"{self.tail()}"

    def tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-600:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, 15)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
                self.process.wait(5)
        self._log.close()


def start(name: str, executable: str, args: list[str], env: Mapping[str, str],
          health_path: str, port: int, workdir_env: str | None = None,
          ) -> Iterator[tuple[Server, str]]:
    """Start a receiver or skip with the reason; yields (server, base URL).

    ``workdir_env``: the environment variable naming the server's data directory (set
    to a fresh temporary directory, removed afterwards)."""
    binary = shutil.which(executable, path=str(Path(sys.executable).parent)) \
        or shutil.which(executable)
    if binary is None:
        pytest.skip(f"{executable} is not installed (make test-interop installs it)")
    workdir = Path(tempfile.mkdtemp(prefix=f"ragtrail-{name}-"))
    base = f"http://127.0.0.1:{port}"
    if workdir_env is not None:
        env = {**env, workdir_env: str(workdir)}
    server = Server(name, [binary, *args], env, base + health_path, workdir)
    try:
        reason = server.wait_ready()
        if reason is not None:
            pytest.skip(reason)
        yield server, base
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[str]]:
    """The demo's LangChain (retriever, reranker, chat model) and LlamaIndex (query engine)
    traces in a fresh SQLite file."""
    import langchain_rag
    import llamaindex_rag

    url = f"sqlite:///{tmp_path_factory.mktemp('interop') / 'demo.db'}"
    return url, [langchain_rag.main(url), llamaindex_rag.main(url)]


@pytest.fixture(scope="session")
def tools_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[str]]:
    """Tool-calling agent traces (LangChain's ``create_agent`` on the real ChatOpenAI and
    ChatAnthropic clients, against the loopback provider server), each: an LLM call
    offered a tool that asks for it, the tool run, and the LLM call that answers from the
    tool's result. Two rounds of the two clients (4 traces): a receiver keys a trace by
    its (deterministic) OTLP trace id, so a test that exports twice uses one round each."""
    from langchain.agents import create_agent
    from langchain_anthropic import ChatAnthropic
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI

    from provider_server import ANTHROPIC_MODEL, OPENAI_MODEL, ProviderServer
    from ragtrail import Trail
    from ragtrail_langchain import RagtrailCallbackHandler

    @tool
    def search_notes(query: str, k: int = 2) -> str:
        """Search the engineering notes."""
        return "SQLite WAL mode lets readers proceed while one writer appends."

    url = f"sqlite:///{tmp_path_factory.mktemp('interop-tools') / 'tools.db'}"
    ids = []
    with ProviderServer() as provider, Trail(url, app_name="tools-agent") as trail:
        handler = RagtrailCallbackHandler(trail)
        for model in 2 * (
                ChatOpenAI(model=OPENAI_MODEL, base_url=provider.openai_url, api_key="sk-test",
                           max_retries=0, timeout=10),
                ChatAnthropic(model_name=ANTHROPIC_MODEL, base_url=provider.url,
                              api_key="sk-ant-test", max_retries=0,
                              default_request_timeout=10)):
            agent = create_agent(model, tools=[search_notes], name="notes_agent")
            provider.tool_call_next("search_notes", {"query": "WAL readers", "k": 2})
            agent.invoke({"messages": [{"role": "user", "content": "What does WAL change?"}]},
                         config={"callbacks": [handler]})
            assert trail.flush(30.0)
            ids.append(str(handler.last_trace_id))
    return url, ids
