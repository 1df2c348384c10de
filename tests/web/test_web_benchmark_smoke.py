"""The web view's benchmark (``make bench``, ``--only ui``) runs end to end at a tiny size."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the web view needs the ui extra (ragtrail[ui])")

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks.report import render  # noqa: E402


def test_ui_benchmark_runs_and_reports(tmp_path: Path) -> None:
    output = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--only", "ui", "--pg-url", "none",
         "--output", str(output), "--cache-dir", str(tmp_path / "cache")],
        cwd=ROOT, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    ui = json.loads(output.read_text(encoding="utf-8"))["benchmarks"]["ui"]
    assert ui["runs"] == ui["traces"] * 10
    for name in ("traces_page", "traces_api", "trace_detail_page", "trace_detail_api",
                 "lineage_page", "usage_page"):
        assert ui["ui_server"][name]["n"] > 0 and ui["ui_server"][name]["p50_ms"] > 0, name
    for name in ("trace_page_50", "traces_50", "lineage", "usage_page_queries"):
        assert ui["query_layer"][name]["n"] > 0, name
    assert set(ui["met"]) == {"traces_page", "trace_detail_page", "usage_page"}
    text = render(json.loads(output.read_text(encoding="utf-8")))
    assert "### ui" in text and "trace detail page at" in text
