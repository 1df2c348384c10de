"""Judge traces: every LLM call a judge makes lands in a trace of its own.

:func:`judge_trace` opens a root run with ``request_type="evaluation"`` (inherited by
every run below it) and makes it the ambient parent of runs that start without one in
this thread or task, so a LlamaIndex or LangChain judge's calls become its children.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from typing import Any

from ..capture import Recorder, register_parent_provider
from ..query._evaluations import EVALUATION_REQUEST_TYPE
from ..schemas import AppContext, Framework, RunKind

__all__ = ["JudgeRun", "judge_trace"]

_active: ContextVar[str | None] = ContextVar("ragtrail_judge_run", default=None)
register_parent_provider("ragtrail.evals", _active.get)


class JudgeRun:
    """The root run of one judge trace (``id`` is the judge trace id)."""

    def __init__(self, run_id: str) -> None:
        self.id = run_id
        self.outputs: Any = None
        self.error: BaseException | None = None


@contextlib.contextmanager
def judge_trace(
    recorder: Recorder,
    *,
    evaluated_trace_id: str,
    name: str,
    vendor_name: str,
    inputs: Any = None,
    metadata: Mapping[str, Any] | None = None,
) -> Iterator[JudgeRun]:
    """Run a judge inside a trace of its own; an exception from the judge is recorded on
    the run and kept on ``JudgeRun.error`` (not raised), so an evaluation loop goes on."""
    run = JudgeRun(str(uuid.uuid4()))
    recorder.start_run(
        run.id, kind=RunKind.CHAIN, name=f"evaluate:{name}", framework=Framework.MANUAL,
        inputs=inputs,
        metadata={"evaluated_trace_id": evaluated_trace_id, "evaluation_name": name,
                  "vendor_name": vendor_name, **(metadata or {})},
        app=AppContext(request_type=EVALUATION_REQUEST_TYPE),
    )
    token = _active.set(run.id)
    try:
        yield run
    except Exception as exc:  # the judge failed: recorded, handed back, not raised
        run.error = exc
    finally:
        _active.reset(token)
    if run.error is not None:
        recorder.fail_run(run.id, run.error)
    else:
        recorder.end_run(run.id, outputs=run.outputs)
