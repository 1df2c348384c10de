"""The web view in a real browser: Debian's chromium driven by Playwright for Python.

Never downloads a browser: the tests use ``/usr/bin/chromium`` (``apt-get install
chromium``; ``.ci/run`` installs it) or ``$RAGTRAIL_CHROMIUM``, and skip with the reason
when there is none. The database is filled by the demo's LangChain and LlamaIndex
pipelines (tests/web_support.py). Screenshots of every page are saved under
``tmp/artifacts/web/`` (or ``$RAGTRAIL_TEST_ARTIFACTS/web``); the path is printed.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette", reason="the web view needs the ui extra (ragtrail[ui])")
sync_api = pytest.importorskip("playwright.sync_api",
                               reason="browser tests need playwright (dev dependency group)")

CHROMIUM = os.environ.get("RAGTRAIL_CHROMIUM") or shutil.which("chromium") or \
    shutil.which("chromium-browser")
if not CHROMIUM or not Path(CHROMIUM).exists():
    pytest.skip("no Chromium found (apt-get install chromium, or set RAGTRAIL_CHROMIUM); "
                "browser tests never download one", allow_module_level=True)

import uvicorn  # noqa: E402
from web_support import DemoIds, demo_database  # noqa: E402

from ragtrail import Trail  # noqa: E402
from ragtrail.query import Lineage  # noqa: E402
from ragtrail.schemas import DocStage, RunKind  # noqa: E402
from ragtrail.web import create_app  # noqa: E402

ARTIFACTS = Path(os.environ.get("RAGTRAIL_TEST_ARTIFACTS")
                 or Path(__file__).resolve().parents[2] / "tmp" / "artifacts") / "web"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, DemoIds]:
    return demo_database(tmp_path_factory)


@pytest.fixture(scope="module")
def trail(demo: tuple[str, DemoIds]) -> Iterator[Trail]:
    with Trail(demo[0], background=False) as opened:
        yield opened


@pytest.fixture(scope="module")
def base_url(demo: tuple[str, DemoIds]) -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = create_app(demo[0], allowed_hosts=frozenset({"127.0.0.1"}))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the web view did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox"] if hasattr(os, "geteuid") and os.geteuid() == 0 else [])
        yield launched
        launched.close()
    print(f"\nweb view screenshots: {ARTIFACTS}", file=sys.__stderr__)


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    opened = context.new_page()
    problems: list[str] = []
    opened.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    opened.on("console", lambda msg: problems.append(f"console: {msg.text}")
              if msg.type == "error" else None)
    opened.on("dialog", lambda dialog: (problems.append(f"dialog: {dialog.message}"),
                                        dialog.dismiss()))
    yield opened
    context.close()
    # No script error, no CSP violation, no dialog on any page a test visited.
    assert problems == []


def _shot(page: Any, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _llm_run(lineage: Lineage) -> str:
    return next(run.id for run in lineage.runs if run.kind is RunKind.LLM)


def _in_prompt(lineage: Lineage) -> list[str]:
    seen: dict[str, str] = {}
    for use in sorted(lineage.documents_at(DocStage.IN_PROMPT), key=lambda u: u.rank):
        seen.setdefault(use.content_hash, use.document_id)
    return list(seen.values())


@pytest.mark.parametrize("which", ["langchain", "llamaindex"])
def test_trace_run_llm_call_document_answers(page: Any, base_url: str, trail: Trail,
                                             demo: tuple[str, DemoIds], which: str) -> None:
    trace_id = getattr(demo[1], which)
    lineage = trail.lineage(trace_id)
    page.goto(f"{base_url}/traces")
    _shot(page, "traces")
    page.click(f'td.question a[href="/traces/{trace_id}"]')
    page.wait_for_url(f"{base_url}/traces/{trace_id}")
    assert page.locator("ol.runs li.run-row").count() == len(lineage.runs)
    assert page.locator("p.qa").first.inner_text() == f"Q {lineage.question}"
    _shot(page, f"trace-{which}")

    # run -> LLM call (loaded into the panel by htmx, with a URL of its own)
    llm_id = _llm_run(lineage)
    page.click(f'li[data-run="{llm_id}"] a.run-link')
    page.wait_for_url(f"{base_url}/traces/{trace_id}?run={llm_id}")
    page.wait_for_selector("#llm-call")
    meta = next(c.metadata for c in lineage.llm_calls if c.run_id == llm_id)
    assert meta.provider_model in page.inner_text("#llm-call h3")
    assert meta.token_usage is not None and meta.token_usage.input_tokens is not None
    tokens = page.inner_text("#tokens")
    assert f"{meta.token_usage.input_tokens:,}" in tokens
    assert f"{meta.token_usage.output_tokens:,}" in tokens
    assert meta.response_metadata is None or (meta.response_metadata.finish_reason or "—") in \
        page.inner_text("#response")
    assert page.locator(f'li[data-run="{llm_id}"]').get_attribute("class").find("selected") >= 0
    _shot(page, f"trace-{which}-llm-call")

    # LLM call -> the documents in its prompt -> a document's page
    prompt_docs = [u.document_id for u in lineage.documents_at(DocStage.IN_PROMPT)
                   if u.run_id == llm_id]
    links = page.locator(".run-docs a.doc-link")
    assert links.all_inner_texts() == prompt_docs and prompt_docs
    content_hash = links.first.get_attribute("href").rsplit("/", 1)[-1]
    links.first.click()
    page.wait_for_selector("#answers")
    use = next(u for u in lineage.documents if u.content_hash == content_hash)
    assert content_hash in page.inner_text("p.ids")
    assert page.inner_text("pre.doc-content") == use.content
    # the documents table keeps the first id stored for a content (another framework's
    # run may have stored the same text first)
    assert page.locator("h1").inner_text().startswith("Document ")
    _shot(page, f"document-{which}")

    # document -> the answers that used it -> this answer's lineage
    row = page.locator(f'#answers tr:has(a[href="/traces/{trace_id}/lineage"])')
    assert row.count() == 1 and "in prompt" in row.inner_text()
    used = trail.answers_using(content_hash)
    assert page.locator("#answers tbody tr").count() == len(used)
    row.locator("a").click()
    page.wait_for_url(f"{base_url}/traces/{trace_id}/lineage")
    assert page.inner_text("#answer") == lineage.answer
    citations = page.locator("#citations a.doc-link").all_inner_texts()
    assert citations == [f"[{n}] {doc}" for n, doc in enumerate(_in_prompt(lineage), start=1)]
    distinct = {u.content_hash for u in lineage.documents}
    assert page.locator("#stages tbody tr").count() == len(distinct)
    _shot(page, f"lineage-{which}")


def test_evaluations_panel_and_list(page: Any, base_url: str, trail: Trail,
                                    demo: tuple[str, DemoIds]) -> None:
    expected = trail.lineage(demo[1].langchain).evaluations
    page.goto(f"{base_url}/traces/{demo[1].langchain}")
    rows = page.locator("#evaluations tr.evaluation")
    assert rows.count() == len(expected) == 2
    judged = next(e for e in expected if e.judge is not None)
    row = page.locator("#evaluations tr.evaluation", has_text="faithfulness")
    text = row.inner_text()
    assert "Ragas" in text and f"{judged.score:.3f}" in text and "gpt-4o-mini" in text
    assert judged.explanation is not None and judged.explanation in text  # markup as text
    assert page.evaluate("window.__xss") is None
    _shot(page, "trace-evaluations")
    page.goto(f"{base_url}/traces")
    badges = page.locator(f'tr[data-href="/traces/{demo[1].langchain}"] .badge.eval')
    assert sorted(badges.all_inner_texts()) == ["faithfulness 0.87", "helpful good"]
    page.goto(f"{base_url}/evaluations?vendor=Ragas")
    assert page.locator("tr.evaluation").count() == len(trail.evaluations(vendor_name="Ragas"))
    page.click("tr.evaluation a >> text=judge trace")
    page.wait_for_url(f"{base_url}/traces/{judged.judge_trace_id}")
    assert page.locator("li.run-row.kind-llm").count() == 1
    _shot(page, "evaluations-judge-trace")


def test_hostile_document_never_runs(page: Any, base_url: str, trail: Trail,
                                     demo: tuple[str, DemoIds]) -> None:
    xss = demo[1].xss
    lineage = trail.lineage(xss)
    hostile = next(u for u in lineage.documents if u.document_id.startswith("javascript:"))
    for name, path in [("xss-trace", f"/traces/{xss}?run={_llm_run(lineage)}"),
                       ("xss-lineage", f"/traces/{xss}/lineage"),
                       ("xss-document", f"/documents/{hostile.content_hash}"),
                       ("xss-session", "/sessions/xss-session"),
                       ("xss-traces", "/traces")]:
        page.goto(base_url + path)
        page.wait_for_load_state("networkidle")
        assert page.evaluate("window.__xss") is None, name
        hrefs = page.eval_on_selector_all("a", "els => els.map(e => e.getAttribute('href'))")
        assert not [h for h in hrefs if h and h.strip().lower().startswith("javascript:")]
        _shot(page, name)
    # the text is there, as text
    page.goto(f"{base_url}/documents/{hostile.content_hash}")
    assert "<script>window.__xss='content'</script>" in page.inner_text("pre.doc-content")
    page.click(f'a[href="/traces/{xss}/lineage"]')  # links still work
    page.wait_for_url(f"{base_url}/traces/{xss}/lineage")
    assert page.evaluate("window.__xss") is None


def test_keyboard_navigation(page: Any, base_url: str, trail: Trail) -> None:
    newest = trail.traces(limit=2)
    page.goto(f"{base_url}/traces")
    page.keyboard.press("j")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{base_url}/traces/{newest[1].trace_id}")
    lineage = trail.lineage(newest[1].trace_id)
    if len(lineage.runs) > 1:
        order = page.eval_on_selector_all("li.run-row", "els => els.map(e => e.dataset.run)")
        page.keyboard.press("j")
        page.wait_for_url(f"{base_url}/traces/{lineage.trace_id}?run={order[1]}")
        page.wait_for_selector(f'li.run-row.selected[data-run="{order[1]}"]')
    page.keyboard.press("l")
    page.wait_for_url(f"{base_url}/traces/{lineage.trace_id}/lineage")
    page.keyboard.press("g")
    page.wait_for_url(f"{base_url}/traces")
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "filter-q"


def test_pagination_filters_and_other_pages(page: Any, base_url: str, trail: Trail,
                                            demo: tuple[str, DemoIds]) -> None:
    everything = [t.trace_id for t in trail.traces(limit=100)]
    page.goto(f"{base_url}/traces?limit=2")
    assert page.locator("tr.trace-row").count() == 2
    page.click("tr.more a")  # htmx appends the next page in place
    page.wait_for_function("() => document.querySelectorAll('tr.trace-row').length === 4")
    shown = page.eval_on_selector_all("tr.trace-row", "els => els.map(e => e.dataset.href)")
    assert shown == [f"/traces/{t}" for t in everything[:4]]

    page.goto(f"{base_url}/traces")
    page.fill("#filter-q", "checkpoint")
    page.select_option("select[name=kind]", "llm")
    page.click("form.filters button")
    page.wait_for_url("**/traces?q=checkpoint*")
    shown = page.eval_on_selector_all("tr.trace-row", "els => els.map(e => e.dataset.href)")
    assert f"/traces/{demo[1].langchain_second}" in shown
    assert f"/traces/{demo[1].langchain}" not in shown

    page.goto(f"{base_url}/usage")
    page.wait_for_function("() => window.Chart && Chart.getChart(document.getElementById('chart-cost'))")
    model_rows = page.locator("#usage-model tbody tr").all_inner_texts()
    assert [r.split("\t")[0] for r in model_rows] == \
        [str(row.group["model"]) for row in trail.usage(["model"])]
    _shot(page, "usage")

    page.goto(f"{base_url}/sessions")
    assert "demo" in page.inner_text("table.sessions")
    page.click('a[href="/sessions/demo"]')
    turns = page.locator("ol.turns li")
    assert turns.count() == 2
    assert trail.lineage(demo[1].langchain).question in turns.nth(0).inner_text()
    _shot(page, "session")

    page.goto(f"{base_url}/diff?a={demo[1].langchain}&b={demo[1].langchain_second}")
    differs = page.locator("#diff tr.differs th").all_inner_texts()
    assert "answer" in differs and "question" in differs and "model" not in differs
    _shot(page, "diff")


def test_dark_and_light_themes_follow_the_system(browser: Any, base_url: str,
                                                 demo: tuple[str, DemoIds]) -> None:
    colours = {}
    for scheme in ("light", "dark"):
        context = browser.new_context(viewport={"width": 1400, "height": 900},
                                      color_scheme=scheme)
        themed = context.new_page()
        themed.goto(f"{base_url}/traces/{demo[1].langchain}")
        colours[scheme] = themed.evaluate("getComputedStyle(document.body).backgroundColor")
        _shot(themed, f"trace-{scheme}")
        context.close()
    assert colours["light"] == "rgb(255, 255, 255)" and colours["dark"] != colours["light"]
