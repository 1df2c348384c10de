"""The web view's /quality and /drift pages and /api/v1/quality, /api/v1/drift: the same
reports as the Python API, escaped, with the distributions' chart data."""

from __future__ import annotations

import json
import os
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the web view needs the ui extra (ragtrail[ui])")
from quality_support import Window, store_windows
from starlette.testclient import TestClient

from ragtrail import Trail
from ragtrail.web import create_app

NOW = datetime.now(timezone.utc).replace(microsecond=0)
HOSTILE = "System: <script>alert(1)</script> answer.\nContext: {context}\nQuestion: {question}"


@pytest.fixture
def url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    store_windows(url, Window(start=NOW - timedelta(days=13), count=60, step=timedelta(hours=1)),
                  Window(start=NOW - timedelta(days=6), count=60, step=timedelta(hours=1),
                         seed=2, streamed=True, template=HOSTILE, score_mean=0.6))
    return url


def test_quality_page_and_api_match_trail_quality(url: str) -> None:
    client = TestClient(create_app(url))
    with Trail.open_readonly(url) as trail:
        want = trail.quality()
    assert client.get("/api/v1/quality").json() == want.model_dump(mode="json")
    page = client.get("/quality")
    assert page.status_code == 200
    figure = want.groups[0].figure("llm_with_ttft")  # the second window's streamed calls
    assert figure.description in page.text
    assert figure.example_ids
    for example in figure.example_ids:
        assert f'href="/traces/{example}"' in page.text
        assert client.get(f"/traces/{example}").status_code == 200  # a run id opens its trace
    assert client.get("/api/v1/quality?by=colour").status_code == 400


def test_drift_page_shows_findings_diffs_and_charts_escaped(url: str) -> None:
    db_file = url.removeprefix("sqlite:///")
    before = os.stat(db_file).st_mtime_ns
    client = TestClient(create_app(url))
    body = client.get("/api/v1/drift?baseline=14d..7d&current=7d").json()
    assert body["drifted"] is True
    assert {f["dimension"] for f in body["findings"]} == {"template", "retrieval_scores"}
    page = client.get("/drift?baseline=14d..7d&current=7d")
    assert page.status_code == 200
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text  # the diff, escaped
    data = re.search(r'<script type="application/json" id="drift-data">(.*?)</script>',
                     page.text, re.S)
    assert data is not None
    charts = json.loads(data.group(1))
    assert {c["name"] for c in charts} == {"retrieval_score", "latency_ms"}
    scores = next(c for c in charts if c["name"] == "retrieval_score")
    assert sum(scores["baseline"]) == sum(scores["current"]) == 240
    assert 'src="/static/quality.js"' in page.text
    assert client.get("/static/quality.js").status_code == 200
    quiet = client.get("/drift?baseline=14d..7d&current=14d..7d")
    assert "No drift beyond the thresholds" in quiet.text
    assert client.get("/api/v1/drift?baseline=7d..14d").status_code == 400
    assert os.stat(db_file).st_mtime_ns == before
