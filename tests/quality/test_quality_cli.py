"""ragtrail quality and ragtrail drift: JSON, views, exit status 3 on drift, windows."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner
from quality_support import Window, store_windows

from ragtrail.cli import cli
from ragtrail.query import EvaluationSource
from ragtrail.testing.internals import DRIFT_EXIT, SOURCES, parse_window

NOW = datetime.now(timezone.utc).replace(microsecond=0)


@pytest.fixture
def url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'q.db'}"
    store_windows(url, Window(start=NOW - timedelta(days=13), count=60, step=timedelta(hours=1)),
                  Window(start=NOW - timedelta(days=6), count=60, step=timedelta(hours=1),
                         seed=2, streamed=True, model="gpt-4o"))
    return url


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.output


def test_quality_json_and_view(url: str) -> None:
    code, out = _run("quality", "--db", url, "--json")
    assert code == 0
    report = json.loads(out)
    figures = {f["name"]: f for f in report["groups"][0]["figures"]}
    assert figures["llm_with_token_usage"]["count"] == 120
    # The second window's calls streamed, and lost their time to first token.
    assert (figures["llm_with_ttft"]["count"], figures["llm_with_ttft"]["denominator"]) == (0, 60)
    assert len(figures["llm_with_ttft"]["example_ids"]) == 2
    code, out = _run("quality", "--db", url, "--since", "7d", "--by", "model")
    assert code == 0
    assert "model=gpt-4o" in out and "model=gpt-4o-mini" not in out
    assert "60 / 60" in out


def test_drift_exits_3_on_drift_and_0_without(url: str, tmp_path: Path) -> None:
    before = os.stat(url.removeprefix("sqlite:///")).st_mtime_ns
    code, out = _run("drift", "--db", url, "--baseline", "14d..7d", "--current", "7d")
    assert code == DRIFT_EXIT == 3
    assert "model mix" in out and "gpt-4o-mini 100.0% → 0.0%" in out
    code, out = _run("drift", "--db", url, "--baseline", "14d..7d", "--current", "7d", "--json")
    assert code == 3
    payload = json.loads(out)
    assert payload["drifted"] is True
    assert {f["dimension"] for f in payload["findings"]} == {"model_mix", "model_version_mix"}
    assert payload["findings"][0]["baseline_examples"]
    code, out = _run("drift", "--db", url, "--baseline", "14d..7d", "--current", "14d..7d")
    assert code == 0, out
    assert "no drift beyond the thresholds" in out
    code, out = _run("drift", "--db", url, "--baseline", "14d..7d", "--current", "7d",
                     "--min-samples", "1000")
    assert code == 0  # too few observations to call it
    assert os.stat(url.removeprefix("sqlite:///")).st_mtime_ns == before  # read-only


def test_windows_and_bad_input(url: str) -> None:
    start, end = parse_window("14d..7d", "--baseline")
    assert start is not None and end is not None
    assert end - start == pytest.approx(timedelta(days=7), abs=timedelta(seconds=5))
    assert parse_window("7d", "--current")[1] is None
    assert parse_window("2026-11-01..2026-11-08", "--baseline") == (
        datetime(2026, 11, 1, tzinfo=timezone.utc), datetime(2026, 11, 8, tzinfo=timezone.utc))
    code, out = _run("drift", "--db", url, "--baseline", "7d..14d")
    assert code == 1 and "not before its end" in out
    code, out = _run("drift", "--db", url, "--baseline", "yesterday..7d")
    assert code == 1 and "duration like 7d" in out
    code, out = _run("quality", "--db", url, "--by", "colour")
    assert code == 2


def test_evals_source_choices_agree_with_the_query_layer() -> None:
    assert tuple(s.value for s in EvaluationSource) == SOURCES
