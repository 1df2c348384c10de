"""trail.drift(): windows with known differences are each found, with what moved, by how
much, confidence and examples from both windows; identical windows report no drift."""

from __future__ import annotations

from datetime import timedelta

import pytest
from quality_support import NOW, TEMPLATE_V1, TEMPLATE_V2, Window, store_windows

from ragtrail import Trail
from ragtrail.errors import ConfigError
from ragtrail.query import DriftReport, DriftThresholds

BASE = Window(start=NOW - timedelta(days=2), seed=1)


def _current(**changes: object) -> Window:
    fields = {**BASE.__dict__, "start": NOW - timedelta(days=1), "seed": 2, **changes}
    return Window(**fields)  # type: ignore[arg-type]


def _drift(url: str, current: Window, **kwargs: object) -> DriftReport:
    store_windows(url, BASE, current)
    with Trail.open_readonly(url) as trail:
        return trail.drift(baseline=(BASE.start, BASE.end()),
                           current=(current.start, current.end()), **kwargs)  # type: ignore[arg-type]


def _trace_ids(trail: Trail, window: Window) -> set[str]:
    return {t.trace_id for t in trail.traces(since=window.start, until=window.end(), limit=1000)}


def _only(report: DriftReport, *dimensions: str) -> None:
    assert sorted({f.dimension for f in report.findings}) == sorted(dimensions), [
        f.message for f in report.findings]


def _examples_from_both(url: str, report: DriftReport, dimension: str, current: Window) -> None:
    with Trail.open_readonly(url) as trail:
        finding = report.of(dimension)[0]
        assert finding.baseline_examples and finding.current_examples
        assert {trail.lineage(e).trace_id for e in finding.baseline_examples} <= _trace_ids(
            trail, BASE)
        assert {trail.lineage(e).trace_id for e in finding.current_examples} <= _trace_ids(
            trail, current)


def test_identical_windows_report_no_drift(db_url: str) -> None:
    store_windows(db_url, BASE)
    with Trail.open_readonly(db_url) as trail:
        report = trail.drift(baseline=(BASE.start, BASE.end()), current=(BASE.start, BASE.end()))
    assert not report.drifted and report.findings == []
    dimensions = {c.dimension for c in report.comparisons}
    assert {"model_mix", "model_version_mix", "parameter", "tokens_per_answer",
            "cost_per_answer", "latency_p50", "latency_p95", "error_rate", "abandonment_rate",
            "retrieval_scores", "retrieval_top_k", "top_document_share"} <= dimensions
    assert all(c.change in (0, 0.0) for c in report.comparisons)


def test_windows_drawn_alike_report_no_drift(db_url: str) -> None:
    report = _drift(db_url, _current())
    _only(report)


def test_a_model_switch_is_found(db_url: str) -> None:
    current = _current(model="gpt-4o", model_version="gpt-4o-2024-08-06")
    report = _drift(db_url, current)
    _only(report, "model_mix", "model_version_mix")
    mix = report.of("model_mix")[0]
    assert mix.baseline == {"gpt-4o": 0.0, "gpt-4o-mini": 1.0}
    assert mix.current == {"gpt-4o": 1.0, "gpt-4o-mini": 0.0}
    assert mix.change == pytest.approx(1.0) and mix.confidence > 0.999
    assert "gpt-4o-mini 100.0% → 0.0%" in mix.message
    _examples_from_both(db_url, report, "model_mix", current)


def test_a_template_change_is_found_with_a_diff(db_url: str) -> None:
    current = _current(template=TEMPLATE_V2)
    report = _drift(db_url, current)
    _only(report, "template")
    finding = report.of("template")[0]
    assert finding.current == 1.0
    assert finding.diff is not None
    assert "-System: answer from the context only.\n" in finding.diff
    assert "+System: answer from the context only. Cite every source as [n].\n" in finding.diff
    assert TEMPLATE_V1 != TEMPLATE_V2
    _examples_from_both(db_url, report, "template", current)


def test_a_retrieval_score_shift_is_found(db_url: str) -> None:
    current = _current(score_mean=0.65)
    report = _drift(db_url, current)
    _only(report, "retrieval_scores")
    finding = report.of("retrieval_scores")[0]
    assert finding.change_kind == "ks" and finding.change > 0.5
    assert finding.baseline == pytest.approx(0.80, abs=0.02)
    assert finding.current == pytest.approx(0.65, abs=0.02)
    assert any(d.name == "retrieval_score" for d in report.distributions)
    _examples_from_both(db_url, report, "retrieval_scores", current)


def test_a_rising_error_rate_is_found(db_url: str) -> None:
    current = _current(error_share=0.15)
    report = _drift(db_url, current)
    assert "error_rate" in {f.dimension for f in report.findings}
    finding = report.of("error_rate")[0]
    assert (finding.baseline, finding.current) == (0.0, pytest.approx(0.15))
    assert finding.confidence > 0.99
    with Trail.open_readonly(db_url) as trail:
        failed = trail.lineage(finding.current_examples[0]).root
        assert failed is not None and failed.status.value == "error"


def test_parameters_tokens_and_latency(db_url: str) -> None:
    current = _current(temperature=0.9, tokens=2400, latency_ms=2000.0)
    report = _drift(db_url, current)
    _only(report, "parameter", "tokens_per_answer", "cost_per_answer", "latency_p50",
          "latency_p95")
    temperature = next(f for f in report.of("parameter") if f.subject == "temperature")
    assert (temperature.baseline, temperature.current) == (pytest.approx(0.2),
                                                           pytest.approx(0.9))
    tokens = report.of("tokens_per_answer")[0]
    assert tokens.change == pytest.approx(1.0, abs=0.1)
    assert report.of("latency_p50")[0].current == pytest.approx(2000, rel=0.1)


def test_documents_newly_dominant_and_gone(db_url: str) -> None:
    current = _current(documents=tuple(range(20, 30)))
    report = _drift(db_url, current)
    found = {f.dimension for f in report.findings}
    assert {"documents_newly_dominant", "documents_gone"} <= found
    new = {f.subject for f in report.of("documents_newly_dominant") if f.drifted}
    gone = {f.subject for f in report.of("documents_gone") if f.drifted}
    assert new and all(20 <= int(d.split("-")[1]) < 30 for d in new)
    assert gone and all(int(d.split("-")[1]) < 20 for d in gone)


def test_evaluation_scores_and_pass_rates(db_url: str) -> None:
    current = _current()
    store_windows(db_url, BASE, current)
    with Trail(db_url, background=False) as trail:
        for window, score in ((BASE, 0.9), (current, 0.5)):
            for i, trace_id in enumerate(sorted(_trace_ids(trail, window))):
                value = score + (0.05 if i % 2 else -0.05)
                trail.add_evaluation(trace_id, "faithfulness", score=value, passed=value > 0.7,
                                     vendor_name="Ragas", source="llm")
        report = trail.drift(baseline=(BASE.start, BASE.end()),
                             current=(current.start, current.end()))
    _only(report, "evaluation_mean", "evaluation_pass_rate")
    mean = report.of("evaluation_mean")[0]
    assert mean.subject == "faithfulness (Ragas)"
    assert (mean.baseline, mean.current) == (pytest.approx(0.9), pytest.approx(0.5))
    assert report.of("evaluation_pass_rate")[0].current == 0.0


def test_thresholds_and_groups(sqlite_url: str) -> None:
    store_windows(sqlite_url, BASE, _current(model="gpt-4o", app="other", seed=3),
                  _current(app="support"))
    with Trail.open_readonly(sqlite_url) as trail:
        window = (NOW - timedelta(days=1), NOW)
        report = trail.drift(baseline=(BASE.start, BASE.end()), current=window)
        # The support app kept its model; the other app has no baseline to compare with.
        assert not [f for f in report.findings if f.group == {"app_name": "support"}]
        loose = trail.drift(baseline=(BASE.start, BASE.end()), current=window,
                            group_by=[], thresholds=DriftThresholds(mix_distance=0.6))
        strict = trail.drift(baseline=(BASE.start, BASE.end()), current=window,
                             group_by=[], thresholds=DriftThresholds(mix_distance=0.4))
        assert "model_mix" not in {f.dimension for f in loose.findings}
        assert "model_mix" in {f.dimension for f in strict.findings}
        with pytest.raises(ConfigError, match="baseline must be a"):
            trail.drift(baseline=BASE.start, current=window)  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match="not before its end"):
            trail.drift(baseline=(NOW, BASE.start), current=window)
