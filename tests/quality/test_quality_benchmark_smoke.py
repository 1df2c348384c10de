"""The quality and drift benchmark (``make bench``, ``--only quality``) runs end to end at
a tiny size and reports against issue 27's targets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("scipy", reason="drift needs the drift extra (ragtrail[drift])")

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks.report import render  # noqa: E402


def test_quality_benchmark_runs_and_reports(tmp_path: Path) -> None:
    output = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--only", "quality", "--pg-url", "none",
         "--output", str(output), "--cache-dir", str(tmp_path / "cache")],
        cwd=ROOT, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(output.read_text(encoding="utf-8"))["benchmarks"]["quality"]
    assert result["runs"] == result["traces"] * 10
    assert result["quality_groups"] == 3  # the generator's three apps
    assert result["drift_comparisons"] > 0
    for key in ("quality", "drift"):
        assert result[key]["n"] == 2 and result[key]["median_s"] > 0
    text = render(json.loads(output.read_text(encoding="utf-8")))
    assert "### quality" in text and "trail.drift() at 600 runs (SQLite)" in text
