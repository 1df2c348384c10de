"""A database for the web view's tests, filled by the demo's real pipelines.

``fill(url)`` runs ``examples/rag_demo.py`` (LangChain LCEL chain and LlamaIndex query
engine), evaluates the LangChain answer (an LLM judge run through LangChain in a judge
trace, vendor "Ragas", and a person's verdict), a second LangChain turn in the demo's session, a LangChain answer over a hostile
document (``<script>``, ``javascript:`` links, an event handler), a manual run whose
inputs held an e-mail address and an API key (redacted at capture) and an output hidden
at capture, and a failed manual run.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))

import langchain_rag  # noqa: E402
import pytest  # noqa: E402
import rag_demo  # noqa: E402

from ragtrail import Trail  # noqa: E402
from ragtrail.capture import CaptureConfig  # noqa: E402
from ragtrail.evals import judge_trace  # noqa: E402
from ragtrail_langchain import RagtrailCallbackHandler  # noqa: E402

#: Strings that must never run or be clickable in a browser.
XSS_DOC_ID = "javascript:window.__xss='docid'"
XSS_CONTENT = ("<script>window.__xss='content'</script> In WAL mode readers see a snapshot "
               "<img src=x onerror=\"window.__xss='img'\"> "
               "<a href=\"javascript:window.__xss='link'\">details</a> [md](javascript:alert(1))")
XSS_QUESTION = "In WAL mode <script>window.__xss='question'</script> what do readers see?"
#: Secrets the manual run was given; the store keeps only their redaction markers.
SECRET_EMAIL = "alice.secret@example.com"
SECRET_KEY = "sk-ant-" + "Zq7" * 10
HIDDEN_OUTPUT = "the hidden output text 4711"
#: The judge's explanation (markup in it must show as text).
JUDGE_EXPLANATION = "Every claim is in <b>sqlite-wal</b>; <script>window.__xss='eval'</script>"


@dataclass
class DemoIds:
    """Trace ids of what :func:`fill` stored."""

    langchain: str
    llamaindex: str
    langchain_second: str
    xss: str
    secret: str
    failed: str


@contextmanager
def _knowledge(extra: dict[str, str]) -> Iterator[None]:
    saved = dict(langchain_rag.KNOWLEDGE)
    langchain_rag.KNOWLEDGE.update(extra)
    try:
        yield
    finally:
        langchain_rag.KNOWLEDGE.clear()
        langchain_rag.KNOWLEDGE.update(saved)


def _langchain_answer(url: str, question: str, session: str) -> str:
    with Trail(url, app_name="langchain-rag-demo") as trail:
        handler = RagtrailCallbackHandler(trail, session_id=session)
        langchain_rag.build_chain().invoke(question, config={"callbacks": [handler]})
        trail.flush()
        assert handler.last_trace_id is not None
        return handler.last_trace_id


def _evaluate(url: str, trace_id: str) -> None:
    with Trail(url, app_name="judge") as trail:
        with judge_trace(trail.recorder, evaluated_trace_id=trace_id, name="faithfulness",
                         vendor_name="Ragas") as judge:
            handler = RagtrailCallbackHandler(trail)
            langchain_rag.OfflineChatModel().invoke(
                "Context:\n[a] Readers keep reading while one writer appends.\n\n"
                "Question: is the answer faithful to the context?",
                config={"callbacks": [handler]})
        trail.flush()
        trail.add_evaluation(trace_id, "faithfulness", score=0.87, source="llm",
                             vendor_name="Ragas", explanation=JUDGE_EXPLANATION,
                             judge_trace_id=judge.id)
        trail.add_evaluation(trace_id, "helpful", label="good", passed=True, source="human",
                             vendor_name="custom")
        trail.flush()


def fill(url: str) -> DemoIds:
    """Fill the database at ``url`` (see the module docstring); return the trace ids."""
    lc, li = rag_demo.main(url)
    _evaluate(url, lc)
    second = _langchain_answer(url, "What does a checkpoint copy back into the database?",
                               "demo")
    with _knowledge({XSS_DOC_ID: XSS_CONTENT}):
        xss = _langchain_answer(url, XSS_QUESTION, "xss-session")
    config = CaptureConfig(hide_outputs=True)
    with Trail(url, app_name="manual", capture=config, background=False) as trail:
        with trail.run("secret-step", inputs={"note": f"mail {SECRET_EMAIL} key {SECRET_KEY}"}
                       ) as run:
            run.set_outputs({"answer": HIDDEN_OUTPUT})
        secret = run.id
        try:
            with trail.run("failing-step", inputs={"question": "will this fail?"}) as failing:
                raise ValueError("the step failed on purpose")
        except ValueError:
            pass
        trail.flush()
    return DemoIds(langchain=lc, llamaindex=li, langchain_second=second, xss=xss,
                   secret=secret, failed=failing.id)


def demo_database(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, DemoIds]:
    """(URL, ids) of a new SQLite database :func:`fill` filled (a module fixture's value)."""
    path = tmp_path_factory.mktemp("web") / "demo.db"
    url = f"sqlite:///{path}"
    return url, fill(url)
