"""The export throughput benchmark runs end to end at a tiny size (``make bench`` runs it
at full size): every span and OpenLineage event is sent, from memory and from the store,
none refused, and each figure comes with its ceiling from the same run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("opentelemetry.sdk", reason="the otel extra is not installed")
pytest.importorskip("openlineage.client", reason="the openlineage extra is not installed")

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks.report import export as export_report  # noqa: E402


def test_export_benchmark_runs_and_reports(tmp_path: Path) -> None:
    output = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--only", "export", "--pg-url", "none",
         "--output", str(output)],
        cwd=ROOT, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(output.read_text(encoding="utf-8"))["benchmarks"]["export"]
    assert result["traces"] == 10 and result["spans"] > result["traces"]
    assert result["from_store_spans"] == result["spans"]  # every stored run became a span
    assert result["send_failed_batches"] == result["sdk_export_failed_batches"] == 0
    assert result["from_store_failed_batches"] == 0
    # A START and an end event per trace, every one accepted.
    assert result["openlineage_events"] == 2 * result["traces"]
    assert result["openlineage_failed_events"] == 0
    for key in ("map_spans_per_s", "send_spans_per_s", "sdk_export_spans_per_s",
                "intake_spans_per_s", "from_store_spans_per_s", "lineage_load_traces_per_s",
                "openlineage_map_events_per_s", "openlineage_send_events_per_s",
                "openlineage_intake_events_per_s"):
        assert result[key] > 0, key
    table = "\n".join(export_report(result))
    assert "SDK exporter alone" in table and "OpenLineage" in table
