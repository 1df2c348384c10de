"""Issue 20, point 1: an application that runs with warnings as errors (``python -W
error``, ``PYTHONWARNINGS=error``, pytest's ``filterwarnings = error``) still has every
run stored. A real LangChain chain runs in a child interpreter started that way.

The writer once called a tenacity API that warns on every batch: under ``-W error``
every write failed and the queued records were lost at ``close()``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from ragtrail import Trail

pytestmark = pytest.mark.reliability

TESTS = Path(__file__).resolve().parents[1]
INVOCATIONS = 5

_CHILD = """
import json, sys, uuid
sys.path.insert(0, {tests!r})
from lc_support import build_rag_chain
from ragtrail import Trail
from ragtrail_langchain import RagtrailCallbackHandler

trail = Trail({url!r})
handler = RagtrailCallbackHandler(trail)
chain = build_rag_chain()
ids = [str(uuid.uuid4()) for _ in range({n})]
answers = [chain.invoke("What does VACUUM do in SQLite?",
                        config={{"callbacks": [handler], "run_id": rid}}) for rid in ids]
if {close}:
    closed = trail.close()
    print(json.dumps({{"ids": ids, "answers": answers, "closed": closed,
                      "writer": trail.stats()["writer"]}}))
else:  # left to the exit hook, which writes under -W error too
    print(json.dumps({{"ids": ids, "answers": answers}}))
"""


@pytest.mark.parametrize("how", ["-W error", "PYTHONWARNINGS=error"])
def test_every_run_is_stored_when_warnings_are_errors(db_url: str, tmp_path: Path,
                                                      how: str) -> None:
    code = _CHILD.format(tests=str(TESTS), url=db_url, n=INVOCATIONS, close=True)
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    argv = [sys.executable]
    if how.startswith("-W"):
        argv += ["-W", "error"]
    else:
        env["PYTHONWARNINGS"] = "error"
    done = subprocess.run([*argv, "-c", code], env=env, capture_output=True, text=True,
                          timeout=300, check=False)  # a hang guard only
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.splitlines()[-1])
    writer = result["writer"]
    assert result["closed"] is True, writer
    assert result["answers"] == ["The context answers: What does VACUUM do in SQLite?"] * 5
    assert writer["stored"] == writer["offered"] == 12 * INVOCATIONS, writer
    assert (writer["dead_lettered"], writer["dropped_total"], writer["pending"]) == (0, 0, 0)
    _assert_stored(db_url, result["ids"])


def test_the_exit_hook_stores_every_run_when_warnings_are_errors(sqlite_url: str,
                                                                 tmp_path: Path) -> None:
    code = _CHILD.format(tests=str(TESTS), url=sqlite_url, n=INVOCATIONS, close=False)
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-W", "error", "-c", code], env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0 and done.stderr == "", done.stderr[-3000:]
    _assert_stored(sqlite_url, json.loads(done.stdout.splitlines()[-1])["ids"])


def _assert_stored(url: str, ids: list[str]) -> None:
    with Trail(url) as reader:
        for rid in ids:
            lineage = reader.lineage(rid)
            assert len(lineage.runs) == 12 and len(lineage.llm_calls) == 1


@pytest.mark.parametrize("category", [DeprecationWarning, PendingDeprecationWarning,
                                      FutureWarning])
def test_this_suite_turns_ragtrails_own_deprecations_into_errors(
        category: type[Warning]) -> None:
    # pyproject's filterwarnings: what ragtrail's code (core or adapter) calls is an
    # error here; third-party deprecations stay quiet. A warning is attributed to the
    # module of the code that issued it: here, the modules of the writer and handlers.
    from ragtrail.writer import BackgroundWriter
    from ragtrail_langchain import RagtrailCallbackHandler
    from ragtrail_llamaindex import RagtrailHandler

    for module in (BackgroundWriter.__module__, RagtrailCallbackHandler.__module__,
                   RagtrailHandler.__module__):
        with pytest.raises(category):
            warnings.warn_explicit("deprecated", category, "x.py", 1, module=module)
    with warnings.catch_warnings(record=True) as seen:
        warnings.warn_explicit("deprecated", DeprecationWarning, "x.py", 1,
                               module="sqlalchemy.sql.base")
    assert seen == []
