"""Security of the web view: escaping of stored values, strict CSP, tokens, hosts,
redacted and hidden values, and `ragtrail ui`'s refusal to bind openly without a token."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette", reason="the web view needs the ui extra (ragtrail[ui])")

from click.testing import CliRunner
from starlette.testclient import TestClient
from web_support import (
    HIDDEN_OUTPUT,
    SECRET_EMAIL,
    SECRET_KEY,
    XSS_CONTENT,
    XSS_QUESTION,
    DemoIds,
    demo_database,
)

from ragtrail import Trail
from ragtrail.cli import cli
from ragtrail.schemas import DocStage
from ragtrail.testing.internals import web_security
from ragtrail.web import create_app

TOKEN = "correct-horse-battery-staple"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, DemoIds]:
    return demo_database(tmp_path_factory)


@pytest.fixture(scope="module")
def client(demo: tuple[str, DemoIds]) -> TestClient:
    return TestClient(create_app(demo[0]))


def _pages(demo: tuple[str, DemoIds]) -> list[str]:
    url, ids = demo
    with Trail(url, background=False) as trail:
        docs = {u.content_hash for t in (ids.xss, ids.langchain) for u in trail.lineage(t).documents}
        llm = [r.id for r in trail.lineage(ids.xss).runs if r.kind.value == "llm"]
    return ["/traces", f"/traces?q={XSS_QUESTION}", f"/traces/{ids.xss}",
            f"/traces/{ids.xss}?run={llm[0]}", f"/traces/{ids.xss}/runs/{llm[0]}",
            f"/traces/{ids.xss}/lineage", f"/traces/{ids.secret}", f"/traces/{ids.failed}",
            "/usage", "/sessions", "/evaluations", f"/traces/{ids.langchain}", "/sessions/xss-session", f"/diff?a={ids.xss}&b={ids.langchain}",
            "/diff", "/traces/<script>alert(1)</script>",
            *(f"/documents/{doc}" for doc in sorted(docs))]


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(html: str) -> _Tags:
    parser = _Tags()
    parser.feed(html)
    return parser


def test_stored_markup_is_escaped_and_never_active(client: TestClient,
                                                   demo: tuple[str, DemoIds]) -> None:
    seen_script_text = False
    for path in _pages(demo):
        response = client.get(path)
        assert response.status_code in (200, 404), path
        parsed = _parse(response.text)
        for tag, attrs in parsed.tags:
            names = {name for name, _ in attrs}
            assert not any(name.startswith("on") for name in names), (path, tag, attrs)
            assert "style" not in names, (path, tag)  # the CSP forbids inline style anyway
            for name, value in attrs:
                if name in ("href", "src", "action", "hx-get", "hx-push-url", "data-href"):
                    assert value is not None and not value.strip().lower().startswith(
                        ("javascript:", "data:", "vbscript:")), (path, tag, name, value)
                    assert value.startswith(("/", "#", "?")), (path, tag, name, value)
            if tag == "script":
                attrs_map = dict(attrs)
                assert attrs_map.get("src", "").startswith("/static/") or \
                    attrs_map.get("type") == "application/json", (path, attrs)
            assert tag not in ("img", "iframe", "object", "embed"), (path, tag)
        text = "".join(parsed.text)
        if "<script>window.__xss" in text:
            seen_script_text = True  # shown as text, not markup
    assert seen_script_text


def test_xss_document_shows_its_text(client: TestClient, demo: tuple[str, DemoIds]) -> None:
    url, ids = demo
    with Trail(url, background=False) as trail:
        doc = next(u for u in trail.lineage(ids.xss).documents_at(DocStage.IN_PROMPT)
                   if u.document_id.startswith("javascript:"))
    html = client.get(f"/documents/{doc.content_hash}").text
    assert "&lt;script&gt;window.__xss=" in html
    assert XSS_CONTENT not in html  # never verbatim
    text = "".join(_parse(html).text)
    assert "<script>window.__xss='content'</script>" in text


def test_every_response_sends_a_strict_csp(client: TestClient, demo: tuple[str, DemoIds]) -> None:
    for path in [*_pages(demo), "/api/v1/traces", "/api/v1/traces/nope/detail",
                 "/static/app.css", "/static/app.js"]:
        response = client.get(path)
        csp = response.headers["content-security-policy"]
        directives = dict(part.strip().split(" ", 1) for part in csp.split(";"))
        assert directives["default-src"] == "'none'"
        assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
        assert "unsafe" not in csp and "*" not in csp
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"


def test_api_never_returns_hidden_or_redacted_values(client: TestClient,
                                                     demo: tuple[str, DemoIds]) -> None:
    _, ids = demo
    everything = [client.get(path).text for path in (
        f"/api/v1/traces/{ids.secret}/detail", "/api/v1/traces?limit=100",
        f"/traces/{ids.secret}", "/traces?q=mail", "/api/v1/traces?q=mail")]
    for body in everything:
        assert SECRET_EMAIL not in body and SECRET_KEY not in body and HIDDEN_OUTPUT not in body
    detail = json.loads(everything[0])
    run = detail["runs"][0]
    assert run["inputs"] == {"note": "mail [EMAIL] key [API_KEY]"}
    assert run["outputs"]["__hidden__"] is True and run["redacted"] is True
    # the page shows the markers, marked
    assert '<mark class="redacted"' in everything[2] and "[EMAIL]" in everything[2]


def test_token_required_on_every_request(demo: tuple[str, DemoIds]) -> None:
    url, ids = demo
    client = TestClient(create_app(url, token=TOKEN))
    for path in ("/traces", f"/traces/{ids.langchain}", "/api/v1/traces",
                 f"/api/v1/traces/{ids.langchain}/detail", "/usage"):
        response = client.get(path)
        assert response.status_code == 401, path
        assert TOKEN not in response.text
        assert ids.langchain not in response.text  # nothing stored leaks
    assert client.get("/api/v1/traces").json() == {"error": "a valid token is required",
                                                   "status": 401}
    for headers in ({"Authorization": "Bearer wrong-token"}, {"X-Ragtrail-Token": TOKEN[:-1]},
                    {"Cookie": f"{web_security.COOKIE}=nope"}):
        assert client.get("/api/v1/traces", headers=headers).status_code == 401
    for headers in ({"Authorization": f"Bearer {TOKEN}"}, {"X-Ragtrail-Token": TOKEN}):
        assert client.get("/api/v1/traces", headers=headers).status_code == 200
    assert client.get("/static/app.css").status_code == 200  # shipped files only


def test_login_form_sets_the_cookie(demo: tuple[str, DemoIds]) -> None:
    client = TestClient(create_app(demo[0], token=TOKEN))
    refused = client.post("/login", content="token=wrong", follow_redirects=False,
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert refused.status_code == 401 and web_security.COOKIE not in refused.headers.get(
        "set-cookie", "")
    signed = client.post("/login", content=f"token={TOKEN}", follow_redirects=False,
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert signed.status_code == 303
    cookie = signed.headers["set-cookie"]
    assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower()
    assert client.get("/traces").status_code == 200  # the cookie is sent from now on


def test_tokens_are_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch,
                                              demo: tuple[str, DemoIds]) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = web_security.hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(web_security.hmac, "compare_digest", spy)
    client = TestClient(create_app(demo[0], token=TOKEN))
    assert client.get("/api/v1/traces", headers={"X-Ragtrail-Token": "guess"}).status_code == 401
    assert calls == [(b"guess", TOKEN.encode())]


def test_loopback_view_refuses_other_host_names(demo: tuple[str, DemoIds]) -> None:
    app = create_app(demo[0], allowed_hosts=frozenset({"127.0.0.1", "localhost"}))
    client = TestClient(app, base_url="http://127.0.0.1:8765")
    assert client.get("/api/v1/traces").status_code == 200
    rebound = client.get("/api/v1/traces", headers={"Host": "attacker.example:8765"})
    assert rebound.status_code == 400


def test_cli_refuses_open_address_without_token(monkeypatch: pytest.MonkeyPatch,
                                                demo: tuple[str, DemoIds]) -> None:
    served: list[dict[str, Any]] = []
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.append({"app": app, **kw}))
    monkeypatch.delenv("RAGTRAIL_UI_TOKEN", raising=False)
    runner = CliRunner()
    result = runner.invoke(cli, ["ui", "--db", demo[0], "--host", "0.0.0.0"])
    assert result.exit_code == 1 and "--token" in result.output and not served
    result = runner.invoke(cli, ["ui", "--db", demo[0], "--host", "0.0.0.0"],
                           env={"RAGTRAIL_UI_TOKEN": TOKEN})
    assert result.exit_code == 0, result.output
    assert served[-1]["host"] == "0.0.0.0" and "token required" in result.output
    token_client = TestClient(served[-1]["app"])
    assert token_client.get("/api/v1/traces").status_code == 401
    result = runner.invoke(cli, ["ui", "--db", demo[0], "--port", "8799"])
    assert result.exit_code == 0, result.output
    assert "http://127.0.0.1:8799/" in result.output
    assert served[-1]["host"] == "127.0.0.1" and served[-1]["port"] == 8799
    result = runner.invoke(cli, ["ui", "--db", demo[0], "--token", "short"])
    assert result.exit_code == 1 and "8 characters" in result.output


def test_static_assets_ship_in_the_package() -> None:
    static = Path(web_security.__file__).parent / "static"
    for name in ("app.css", "app.js", "htmx.min.js", "chart.umd.min.js", "htmx.LICENSE.txt",
                 "chart.js.LICENSE.md"):
        assert (static / name).is_file(), name
    assert re.search(r"Chart\.js v4\.", (static / "chart.umd.min.js").read_text()[:200])


def test_ragtrail_ui_serves_until_interrupted(demo: tuple[str, DemoIds]) -> None:
    import os
    import signal
    import socket
    import subprocess
    import sys
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("RAGTRAIL_UI_TOKEN", None)
    proc = subprocess.Popen([sys.executable, "-m", "ragtrail", "ui", "--db", demo[0],
                             "--port", str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}/" in line and "read-only" in line
        body = None
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/traces") as reply:
                    body = json.loads(reply.read())
                    csp = reply.headers["Content-Security-Policy"]
                break
            except OSError:
                import time

                time.sleep(0.1)
        assert body is not None and demo[1].langchain in {t["trace_id"] for t in body["traces"]}
        assert "script-src 'self'" in csp
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
