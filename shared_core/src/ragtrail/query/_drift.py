"""``drift(engine, baseline, current, ...)``: what changed between two time windows.

Each window is read with aggregate queries grouped in SQL (one pass over its LLM calls,
one over its traces, one over its retrieval links, one over its evaluations); only
distributions are fetched as bounded samples (the newest ``sample_size`` retrieval
scores and trace latencies of each window), for the two-sample tests. The model,
version and template mixes, parameters, error and abandonment rates and top-k read the
whole days of a window from the per-day summaries (``store._summaries``), the rest of it
from the rows; tokens and cost per answer, citations and evaluations read the rows. The tests come
from SciPy (``ragtrail[drift]``): Kolmogorov-Smirnov for distributions, chi-square for
mixes and rates, Welch's t-test for means (from the counts, means and variances SQL
computed). A comparison is a *finding* when it moved beyond its threshold
(:class:`DriftThresholds`) with at least the required confidence (1 - p-value) and both
windows hold at least ``min_samples`` observations.

Grouping as in :func:`~ragtrail.query.quality`: ``app_name`` splits every dimension;
``model``, ``provider`` and ``template`` split the LLM-call dimensions, and the others
are compared once, under a group whose values are ``None``.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.engine import Connection, Engine

from ..errors import ConfigError
from ..schemas import DocStage, RunKind, RunStatus
from ..store import _tables
from ..store._summaries import parts as summary_parts
from ._common import parse_time, time_filters
from ._evaluations import not_evaluation
from ._quality import _LLM_PART, CALL_RUN_JOIN, _call_run, _keys

__all__ = ["DriftFinding", "DriftReport", "DriftThresholds", "Window", "drift"]

_runs = _tables.runs
_calls = _tables.llm_calls
_links = _tables.document_links
_evals = _tables.evaluations

Window = tuple[datetime | str | None, datetime | str | None]


class _Result(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DriftThresholds(_Result):
    """When a change counts as drift. Every comparison must also reach ``confidence``
    and have ``min_samples`` observations in both windows."""

    confidence: float = Field(0.99, gt=0, lt=1, description="1 - p-value required.")
    min_samples: int = Field(30, ge=1)
    mix_distance: float = Field(
        0.10, ge=0, le=1, description="Total variation distance of a model/version/template mix.")
    new_template_share: float = Field(
        0.05, ge=0, le=1, description="Share of current calls a template unseen in the "
                                      "baseline must have.")
    ks_statistic: float = Field(0.10, ge=0, le=1,
                                description="Kolmogorov-Smirnov statistic of retrieval scores.")
    relative_change: float = Field(
        0.20, ge=0, description="Tokens, cost, latency and parameters: |current/baseline - 1|.")
    rate_change: float = Field(
        0.02, ge=0, le=1, description="Error, abandonment, pass rates, document shares: "
                                      "absolute change.")
    score_change: float = Field(0.05, ge=0, description="Mean evaluation score: absolute change.")
    top_share_change: float = Field(
        0.10, ge=0, le=1, description="Share of answers citing their window's top documents "
                                      "(how concentrated citations are): absolute change.")
    document_share_change: float = Field(
        0.05, ge=0, le=1, description="One document's share of answers: absolute change "
                                      "(tested per document, Bonferroni-corrected).")
    sample_size: int = Field(5000, ge=10, description="Scores and latencies read per window.")
    top_documents: int = Field(10, ge=1, description="How many documents count as the top.")


class DriftFinding(_Result):
    """One comparison of the two windows."""

    dimension: str = Field(description="model_mix, model_version_mix, template, parameter, "
                                       "retrieval_scores, retrieval_top_k, top_document_share, "
                                       "documents_newly_dominant, documents_gone, "
                                       "tokens_per_answer, cost_per_answer, latency_p50, "
                                       "latency_p95, error_rate, abandonment_rate, "
                                       "evaluation_mean, evaluation_pass_rate.")
    group: dict[str, Any]
    subject: str | None = Field(None, description="The parameter, evaluation name/vendor, "
                                                  "template hash or document it is about.")
    baseline: Any = None
    current: Any = None
    change: float | None = Field(None, description="How much it moved (see change_kind).")
    change_kind: str = Field("absolute", description="absolute, relative, distance or ks.")
    confidence: float | None = Field(None, description="1 - p-value of the two-sample test.")
    baseline_count: int = 0
    current_count: int = 0
    drifted: bool = False
    message: str = ""
    baseline_examples: list[str] = Field(default_factory=list, description="Trace ids.")
    current_examples: list[str] = Field(default_factory=list, description="Trace ids.")
    diff: str | None = Field(None, description="Template changes: a unified diff of the text.")


class Distribution(_Result):
    """A bounded sample's histogram of one group in both windows (for charts)."""

    group: dict[str, Any]
    name: str
    edges: list[float]
    baseline: list[int]
    current: list[int]


class DriftReport(_Result):
    """Every comparison made; :attr:`findings` are those beyond the thresholds."""

    baseline: tuple[datetime | None, datetime | None]
    current: tuple[datetime | None, datetime | None]
    group_by: list[str]
    thresholds: DriftThresholds
    comparisons: list[DriftFinding] = Field(default_factory=list)
    distributions: list[Distribution] = Field(default_factory=list)

    @property
    def findings(self) -> list[DriftFinding]:
        """The comparisons that moved beyond their thresholds."""
        return [c for c in self.comparisons if c.drifted]

    @property
    def drifted(self) -> bool:
        """True when anything moved beyond its threshold."""
        return any(c.drifted for c in self.comparisons)

    def of(self, dimension: str) -> list[DriftFinding]:
        """The comparisons of one dimension."""
        return [c for c in self.comparisons if c.dimension == dimension]


# -- statistics (SciPy) ---------------------------------------------------------------


def _stats() -> Any:
    try:
        from scipy import stats
    except ImportError:
        raise ConfigError("drift detection needs SciPy: pip install 'ragtrail[drift]'") from None
    return stats


def _confidence(p: float | None) -> float | None:
    if p is None or math.isnan(p):
        return None
    return max(0.0, min(1.0, 1.0 - float(p)))


def _chi2(table: list[list[int]]) -> float | None:
    """Confidence that the rows' distributions over the columns differ."""
    cols = [i for i in range(len(table[0])) if any(row[i] for row in table)]
    if len(cols) < 2 or any(sum(row) == 0 for row in table):
        return 0.0 if len(cols) < 2 else None
    trimmed = [[row[i] for i in cols] for row in table]
    result = _stats().chi2_contingency(trimmed, correction=len(cols) == 2)
    return _confidence(result.pvalue)


def _welch(n1: int, m1: float, v1: float, n2: int, m2: float, v2: float) -> float | None:
    if n1 < 2 or n2 < 2:
        return None
    s1, s2 = math.sqrt(max(v1, 0.0)), math.sqrt(max(v2, 0.0))
    if s1 == 0 and s2 == 0:
        # Means equal but for the order their sums were added in are equal.
        return 0.0 if math.isclose(m1, m2, rel_tol=1e-12, abs_tol=1e-300) else 1.0
    result = _stats().ttest_ind_from_stats(m1, s1, n1, m2, s2, n2, equal_var=False)
    return _confidence(result.pvalue)


def _variance(n: int, mean: float | None, mean_sq: float | None) -> float:
    if n < 2 or mean is None or mean_sq is None:
        return 0.0
    spread = mean_sq - mean * mean
    # Below the rounding error of the two means (values all alike, e.g. one temperature
    # for every call): no spread, whatever order the sums were added in.
    if spread <= 1e-12 * abs(mean_sq):
        return 0.0
    return spread * n / (n - 1)


def _relative(base: float | None, cur: float | None) -> float | None:
    if base is None or cur is None:
        return None
    if base == 0:
        return 0.0 if cur == 0 else math.inf
    return cur / base - 1.0


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:,.4g}"


# -- the report ------------------------------------------------------------------------


class _Drift:
    def __init__(self, conn: Connection, keys: list[str], windows: dict[str, tuple[Any, Any]],
                 thresholds: DriftThresholds, summaries: bool = True) -> None:
        self.conn = conn
        self.summaries = summaries
        self.keys = keys
        self.windows = windows
        self.t = thresholds
        self.app_only = keys == ["app_name"]
        self.comparisons: list[DriftFinding] = []
        self.distributions: list[Distribution] = []
        self.money_scale = 1e-10 if conn.dialect.name == "sqlite" else 1.0

    # -- helpers -----------------------------------------------------------------------

    def _group(self, key: Any) -> dict[str, Any]:
        if isinstance(key, tuple):
            return dict(zip(self.keys, key, strict=True))
        return {k: (key if k == "app_name" and self.app_only else None) for k in self.keys}

    def _enough(self, nb: int, nc: int) -> bool:
        return nb >= self.t.min_samples and nc >= self.t.min_samples

    def add(self, finding: DriftFinding, *, moved: bool) -> None:
        conf = finding.confidence
        finding.drifted = bool(moved and conf is not None and conf >= self.t.confidence
                               and self._enough(finding.baseline_count, finding.current_count))
        self.comparisons.append(finding)

    # -- LLM calls: models, versions, templates, parameters --------------------------------

    def llm(self) -> None:
        rows: dict[str, list[Any]] = {name: self._llm_rows(window)
                                      for name, window in self.windows.items()}
        by_group: dict[tuple[Any, ...], dict[str, list[Any]]] = {}
        for name, found in rows.items():
            for r in found:
                key = tuple(r[f"g_{i}"] for i in range(len(self.keys)))
                by_group.setdefault(key, {"baseline": [], "current": []})[name].append(r)
        for key, parts_ in sorted(by_group.items(), key=lambda kv: repr(kv[0])):
            group = dict(zip(self.keys, key, strict=True))
            if "model" not in self.keys:
                self._mix("model_mix", group, parts_, lambda r: r["model"])
            self._mix("model_version_mix", group, parts_,
                      lambda r: f"{r['model']} @ {r['version']}" if r["version"] else None)
            if "template" not in self.keys:
                self._templates(group, parts_)
            for param in ("temp", "maxt"):
                self._parameter(group, parts_, param)

    def _llm_rows(self, window: tuple[Any, Any]) -> list[dict[str, Any]]:
        """The window's calls (judges' left out) per group, model, version and template:
        count, least and greatest trace id, count/mean/mean square of the temperature and
        the max tokens sent; from the ``llm`` summary. Ordered by those values (NULL
        first), as SQLite's GROUP BY gives them."""
        merged: dict[tuple[Any, ...], dict[str, Any]] = {}
        for p in summary_parts(self.conn, "llm", *window, summaries=self.summaries):
            if p["judge"]:
                continue
            key = (*(p[_LLM_PART[k]] for k in self.keys), p["model"], p["version"],
                   p["template"])
            entry = merged.get(key)
            if entry is None:
                entry = merged[key] = {"n": 0, "lo": None, "hi": None,
                                       **{f"x{i}": 0.0 for i in range(6)}}
            entry["n"] += p["n"]
            if p["lo2"] is not None:
                entry["lo"] = p["lo2"] if entry["lo"] is None else min(entry["lo"], p["lo2"])
            if p["hi2"] is not None:
                entry["hi"] = p["hi2"] if entry["hi"] is None else max(entry["hi"], p["hi2"])
            for i in range(6):
                entry[f"x{i}"] += p[f"x{i}"]
        out = []
        for key in sorted(merged, key=lambda k: [(v is not None, v or "") for v in k]):
            e = merged[key]
            row: dict[str, Any] = {f"g_{i}": v for i, v in enumerate(key[:len(self.keys)])}
            row.update(model=key[-3], version=key[-2], tpl=key[-1], n=e["n"], lo=e["lo"],
                       hi=e["hi"])
            for param, first in (("temp", 0), ("maxt", 3)):
                n = int(e[f"x{first}"])
                row[f"{param}_n"] = n
                row[param] = e[f"x{first + 1}"] / n if n else None
                row[f"{param}_sq"] = e[f"x{first + 2}"] / n if n else None
            out.append(row)
        return out

    def _mix(self, dimension: str, group: dict[str, Any], parts: dict[str, list[Any]],
             label: Any) -> None:
        counts: dict[str, dict[str, int]] = {"baseline": {}, "current": {}}
        examples: dict[str, dict[str, str]] = {"baseline": {}, "current": {}}
        for name, found in parts.items():
            for r in found:
                value = label(r)
                if value is None:
                    continue
                counts[name][value] = counts[name].get(value, 0) + r["n"]
                examples[name].setdefault(value, r["lo"])
        nb, nc = sum(counts["baseline"].values()), sum(counts["current"].values())
        if not nb or not nc:
            return
        values = sorted(set(counts["baseline"]) | set(counts["current"]))
        shares = {v: (counts["baseline"].get(v, 0) / nb, counts["current"].get(v, 0) / nc)
                  for v in values}
        distance = 0.5 * sum(abs(b - c) for b, c in shares.values())
        conf = _chi2([[counts["baseline"].get(v, 0) for v in values],
                      [counts["current"].get(v, 0) for v in values]])
        gained = max(values, key=lambda v: shares[v][1] - shares[v][0])
        lost = min(values, key=lambda v: shares[v][1] - shares[v][0])
        moves = ", ".join(f"{v} {_pct(b)} → {_pct(c)}" for v, (b, c) in shares.items()
                          if abs(b - c) >= 0.005) or "no change"
        self.add(DriftFinding(
            dimension=dimension, group=group,
            baseline={v: s[0] for v, s in shares.items()},
            current={v: s[1] for v, s in shares.items()},
            change=distance, change_kind="distance", confidence=conf,
            baseline_count=nb, current_count=nc,
            message=f"{dimension.replace('_', ' ')}: {moves} (distance {distance:.2f})",
            baseline_examples=[e for e in [examples["baseline"].get(lost)] if e],
            current_examples=[e for e in [examples["current"].get(gained)] if e],
        ), moved=distance >= self.t.mix_distance)

    def _templates(self, group: dict[str, Any], parts: dict[str, list[Any]]) -> None:
        counts: dict[str, dict[str, int]] = {"baseline": {}, "current": {}}
        examples: dict[str, dict[str, str]] = {"baseline": {}, "current": {}}
        for name, found in parts.items():
            for r in found:
                if r["tpl"] is not None:
                    counts[name][r["tpl"]] = counts[name].get(r["tpl"], 0) + r["n"]
                    examples[name].setdefault(r["tpl"], r["lo"])
        nb, nc = sum(counts["baseline"].values()), sum(counts["current"].values())
        if not nb or not nc:
            return
        values = sorted(set(counts["baseline"]) | set(counts["current"]))
        conf = _chi2([[counts["baseline"].get(v, 0) for v in values],
                      [counts["current"].get(v, 0) for v in values]])
        old = max(counts["baseline"], key=lambda v: counts["baseline"][v])
        for new in sorted(set(counts["current"]) - set(counts["baseline"])):
            share = counts["current"][new] / nc
            diff = "".join(difflib.unified_diff(
                (self._template_text(old) or "").splitlines(keepends=True),
                (self._template_text(new) or "").splitlines(keepends=True),
                fromfile=f"template {old[:12]} (baseline)",
                tofile=f"template {new[:12]} (current)"))
            self.add(DriftFinding(
                dimension="template", group=group, subject=new,
                baseline=0.0, current=share, change=share, confidence=conf,
                baseline_count=nb, current_count=nc,
                message=f"new prompt template {new[:12]} in {_pct(share)} of current calls "
                        f"(baseline's main template {old[:12]})",
                baseline_examples=[examples["baseline"][old]],
                current_examples=[examples["current"][new]], diff=diff or None,
            ), moved=share >= self.t.new_template_share)

    def _template_text(self, template_hash: str) -> str | None:
        meta = self.conn.execute(
            sa.select(_calls.c.metadata).where(_calls.c.prompt_template_hash == template_hash)
            .order_by(_calls.c.started_at.desc()).limit(1)).scalar_one_or_none()
        text = meta.get("prompt_template") if isinstance(meta, dict) else None
        return text if isinstance(text, str) else None

    def _parameter(self, group: dict[str, Any], parts: dict[str, list[Any]], param: str) -> None:
        stats = {}
        for name, found in parts.items():
            n = sum(r[f"{param}_n"] for r in found)
            if n:
                mean = sum(r[param] * r[f"{param}_n"] for r in found if r[param] is not None) / n
                mean_sq = sum(r[f"{param}_sq"] * r[f"{param}_n"] for r in found
                              if r[f"{param}_sq"] is not None) / n
                stats[name] = (n, mean, _variance(n, mean, mean_sq),
                               next(r["lo"] for r in found if r[f"{param}_n"]))
        if len(stats) < 2:
            return
        (nb, mb, vb, eb), (nc, mc, vc, ec) = stats["baseline"], stats["current"]
        rel = _relative(mb, mc)
        subject = {"temp": "temperature", "maxt": "max_tokens"}[param]
        self.add(DriftFinding(
            dimension="parameter", group=group, subject=subject, baseline=mb, current=mc,
            change=rel, change_kind="relative", confidence=_welch(nb, mb, vb, nc, mc, vc),
            baseline_count=nb, current_count=nc,
            message=f"mean {subject} {_num(mb)} → {_num(mc)}",
            baseline_examples=[eb], current_examples=[ec],
        ), moved=rel is not None and abs(rel) >= self.t.relative_change)

    # -- traces: tokens and cost per answer, latency, errors, abandonment -------------------

    def traces(self) -> None:
        app = self.app_only
        per: dict[str, dict[Any, Any]] = {"baseline": {}, "current": {}}
        rates: dict[str, dict[Any, Any]] = {"baseline": {}, "current": {}}
        for name, window in self.windows.items():
            per_trace = (
                sa.select(_calls.c.trace_id.label("trace_id"),
                          sa.func.max(_call_run.c.app_name).label("app"),
                          sa.func.sum(_calls.c.total_tokens).label("tokens"),
                          sa.func.count(_calls.c.total_cost).label("priced"),
                          sa.func.count().label("calls"),
                          sa.cast(sa.func.sum(_calls.c.total_cost), sa.Float).label("cost"))
                .select_from(_calls.join(_call_run, CALL_RUN_JOIN))
                .where(not_evaluation(_call_run.c.request_type),
                       *time_filters(_calls.c.started_at, *window))
                .group_by(_calls.c.trace_id).subquery())
            fully_priced = per_trace.c.priced == per_trace.c.calls
            cost = sa.case((fully_priced, per_trace.c.cost), else_=None)
            group = [per_trace.c.app.label("g")] if app else []
            stmt = sa.select(
                *group, sa.func.count().label("n"),
                sa.func.count(per_trace.c.tokens).label("tok_n"),
                sa.func.avg(sa.cast(per_trace.c.tokens, sa.Float)).label("tok"),
                sa.func.avg(sa.cast(per_trace.c.tokens, sa.Float)
                            * sa.cast(per_trace.c.tokens, sa.Float)).label("tok_sq"),
                sa.func.count(cost).label("cost_n"), sa.func.avg(cost).label("cost"),
                sa.func.avg(cost * cost).label("cost_sq"),
                sa.func.min(per_trace.c.trace_id).label("lo"),
                sa.func.max(per_trace.c.trace_id).label("hi"),
            ).group_by(*group)
            for r in self.conn.execute(stmt):
                per[name][r._mapping["g"] if app else None] = r._mapping
            rates[name] = self._rates(window)
        for key in sorted(set(per["baseline"]) & set(per["current"]), key=repr):
            b, c = per["baseline"][key], per["current"][key]
            self._mean("tokens_per_answer", key, b, c, "tok", 1.0, "tokens per answer")
            self._mean("cost_per_answer", key, b, c, "cost", self.money_scale,
                       "cost per answer (fully priced answers), USD")
        for key in sorted(set(rates["baseline"]) & set(rates["current"]), key=repr):
            b, c = rates["baseline"][key], rates["current"][key]
            self._rate("error_rate", key, b, c, "errors", "error_ex", "failed traces")
            self._rate("abandonment_rate", key, b, c, "abandoned", "abandoned_ex",
                       "abandoned traces")
        self._latency()

    def _rates(self, window: tuple[Any, Any]) -> dict[Any, dict[str, Any]]:
        """Roots (judges' left out) per group: how many, failed, abandoned, the greatest
        id of each and of those that did not fail; from the ``root`` summary."""
        out: dict[Any, dict[str, Any]] = {}
        error, abandoned = RunStatus.ERROR.value, RunStatus.ABANDONED.value
        for p in summary_parts(self.conn, "root", *window, summaries=self.summaries):
            key = p["app"] if self.app_only else None
            entry = out.setdefault(key, {"n": 0, "errors": 0, "abandoned": 0, "error_ex": None,
                                         "abandoned_ex": None, "ok_ex": None})
            entry["n"] += p["n"]
            example = "error_ex" if p["status"] == error else "ok_ex"
            if p["status"] == error:
                entry["errors"] += p["n"]
            if p["status"] == abandoned:
                entry["abandoned"] += p["n"]
                entry["abandoned_ex"] = _greatest(entry["abandoned_ex"], p["hi"])
            entry[example] = _greatest(entry[example], p["hi"])
        return out

    def _mean(self, dimension: str, key: Any, b: Any, c: Any, col: str, scale: float,
              text: str) -> None:
        nb, nc = int(b[f"{col}_n"] or 0), int(c[f"{col}_n"] or 0)
        if not nb or not nc:
            return
        mb, mc = float(b[col]) * scale, float(c[col]) * scale
        vb = _variance(nb, float(b[col]), float(b[f"{col}_sq"])) * scale * scale
        vc = _variance(nc, float(c[col]), float(c[f"{col}_sq"])) * scale * scale
        rel = _relative(mb, mc)
        self.add(DriftFinding(
            dimension=dimension, group=self._group(key), baseline=mb, current=mc, change=rel,
            change_kind="relative", confidence=_welch(nb, mb, vb, nc, mc, vc),
            baseline_count=nb, current_count=nc, message=f"{text}: {_num(mb)} → {_num(mc)}",
            baseline_examples=[b["hi"]], current_examples=[c["hi"]],
        ), moved=rel is not None and abs(rel) >= self.t.relative_change)

    def _rate(self, dimension: str, key: Any, b: Any, c: Any, col: str, example: str,
              text: str) -> None:
        nb, nc = int(b["n"]), int(c["n"])
        kb, kc = int(b[col] or 0), int(c[col] or 0)
        if not nb or not nc:
            return
        rb, rc = kb / nb, kc / nc
        self.add(DriftFinding(
            dimension=dimension, group=self._group(key), baseline=rb, current=rc,
            change=rc - rb, confidence=_chi2([[kb, nb - kb], [kc, nc - kc]]),
            baseline_count=nb, current_count=nc,
            message=f"{text}: {_pct(rb)} → {_pct(rc)}",
            baseline_examples=[e for e in [b[example] or b["ok_ex"]] if e],
            current_examples=[e for e in [c[example] or c["ok_ex"]] if e],
        ), moved=abs(rc - rb) >= self.t.rate_change)

    def _sample(self, stmt: sa.Select[Any], window: tuple[Any, Any], column: Any
                ) -> list[Any]:
        return list(self.conn.execute(
            stmt.where(*time_filters(column, *window)).order_by(column.desc())
            .limit(self.t.sample_size)))

    def _latency(self) -> None:
        app = self.app_only
        stmt = sa.select(_runs.c.id, _runs.c.duration_ms, _runs.c.app_name).where(
            _runs.c.parent_id.is_(None), not_evaluation(_runs.c.request_type),
            _runs.c.duration_ms.is_not(None))
        samples = {name: self._sample(stmt, window, _runs.c.started_at)
                   for name, window in self.windows.items()}
        for key, parts in self._split(samples, lambda r: r.app_name if app else None).items():
            b = [r.duration_ms for r in parts["baseline"]]
            c = [r.duration_ms for r in parts["current"]]
            if not b or not c:
                continue
            conf = _confidence(_stats().ks_2samp(b, c).pvalue) if len(b) > 1 and len(c) > 1 \
                else None
            for q, dimension in ((0.5, "latency_p50"), (0.95, "latency_p95")):
                pb, pc = _quantile(b, q), _quantile(c, q)
                rel = _relative(pb, pc)
                self.add(DriftFinding(
                    dimension=dimension, group=self._group(key), baseline=pb, current=pc,
                    change=rel, change_kind="relative", confidence=conf,
                    baseline_count=len(b), current_count=len(c),
                    message=f"trace latency p{int(q * 100)}: {_num(pb)} ms → {_num(pc)} ms",
                    baseline_examples=[_nearest(parts["baseline"], pb)],
                    current_examples=[_nearest(parts["current"], pc)],
                ), moved=rel is not None and abs(rel) >= self.t.relative_change)
            self._histogram(key, "latency_ms", b, c)

    @staticmethod
    def _split(samples: dict[str, list[Any]], key: Any) -> dict[Any, dict[str, list[Any]]]:
        out: dict[Any, dict[str, list[Any]]] = {}
        for name, rows in samples.items():
            for r in rows:
                out.setdefault(key(r), {"baseline": [], "current": []})[name].append(r)
        return out

    def _histogram(self, key: Any, name: str, b: list[float], c: list[float],
                   bins: int = 20) -> None:
        low, high = min(min(b), min(c)), max(max(b), max(c))
        width = (high - low) / bins or 1.0
        edges = [low + i * width for i in range(bins + 1)]

        def count(values: list[float]) -> list[int]:
            out = [0] * bins
            for v in values:
                out[min(bins - 1, int((v - low) / width))] += 1
            return out

        self.distributions.append(Distribution(group=self._group(key), name=name, edges=edges,
                                               baseline=count(b), current=count(c)))

    # -- retrieval: scores, top-k, documents --------------------------------------------

    def retrieval(self) -> None:
        app = self.app_only
        retrieved = _links.c.stage == DocStage.RETRIEVED.value
        stmt = (sa.select(_links.c.score, _links.c.trace_id, _runs.c.app_name)
                .select_from(_runs.join(_links, sa.and_(_links.c.run_id == _runs.c.id,
                                                        retrieved)))
                .where(_runs.c.kind.in_([RunKind.RETRIEVER.value, RunKind.TOOL.value]),
                       _links.c.score.is_not(None)))
        samples = {name: self._sample(stmt, window, _runs.c.started_at)
                   for name, window in self.windows.items()}
        for key, parts in self._split(samples, lambda r: r.app_name if app else None).items():
            b = [r.score for r in parts["baseline"]]
            c = [r.score for r in parts["current"]]
            if len(b) < 2 or len(c) < 2:
                continue
            result = _stats().ks_2samp(b, c)
            mb, mc = sum(b) / len(b), sum(c) / len(c)
            self.add(DriftFinding(
                dimension="retrieval_scores", group=self._group(key), baseline=mb, current=mc,
                change=float(result.statistic), change_kind="ks",
                confidence=_confidence(result.pvalue), baseline_count=len(b),
                current_count=len(c),
                message=f"retrieval score distribution: mean {mb:.3f} → {mc:.3f} "
                        f"(KS statistic {result.statistic:.2f})",
                baseline_examples=[parts["baseline"][0].trace_id],
                current_examples=[parts["current"][0].trace_id],
            ), moved=result.statistic >= self.t.ks_statistic)
            self._histogram(key, "retrieval_score", b, c)
        self._top_k()
        self._documents()

    def _top_k(self) -> None:
        app = self.app_only
        per: dict[str, dict[Any, Any]] = {}
        for name, window in self.windows.items():
            # Retrievers with at least one retrieved document (the ``retrieval`` summary:
            # x0 sums the documents, x1 their squares).
            found: dict[Any, dict[str, Any]] = {}
            for p in summary_parts(self.conn, "retrieval", *window, summaries=self.summaries):
                if p["kind"] != RunKind.RETRIEVER.value or not p["has_links"]:
                    continue
                entry = found.setdefault(p["app"] if app else None,
                                         {"n": 0, "k": 0.0, "k_sq": 0.0, "hi": None})
                entry["n"] += p["n"]
                entry["k"] += p["x0"]
                entry["k_sq"] += p["x1"]
                entry["hi"] = _greatest(entry["hi"], p["hi2"])
            for entry in found.values():
                entry["k"] /= entry["n"]
                entry["k_sq"] /= entry["n"]
            per[name] = found
        for key in sorted(set(per["baseline"]) & set(per["current"]), key=repr):
            b, c = per["baseline"][key], per["current"][key]
            nb, nc = int(b["n"]), int(c["n"])
            mb, mc = float(b["k"]), float(c["k"])
            rel = _relative(mb, mc)
            self.add(DriftFinding(
                dimension="retrieval_top_k", group=self._group(key), subject="top_k",
                baseline=mb, current=mc, change=rel, change_kind="relative",
                confidence=_welch(nb, mb, _variance(nb, mb, float(b["k_sq"])), nc, mc,
                                  _variance(nc, mc, float(c["k_sq"]))),
                baseline_count=nb, current_count=nc,
                message=f"documents retrieved per retrieval: {_num(mb)} → {_num(mc)}",
                baseline_examples=[b["hi"]], current_examples=[c["hi"]],
            ), moved=rel is not None and abs(rel) >= self.t.relative_change)

    def _link_window(self, window: tuple[Any, Any]) -> list[sa.ColumnElement[bool]]:
        """The window on the links' runs. On SQLite the start is compared as ``+started_at``
        (no index use): the planner then reads the window's in-prompt links from
        ix_document_links_reports and looks their run up (ix_runs_call_context), ~5x
        faster than walking every run of the window to find its links."""
        started: sa.ColumnElement[Any] = _runs.c.started_at
        if self.conn.dialect.name == "sqlite":
            started = sa.type_coerce(sa.literal_column(f"+{_runs.name}.started_at"),
                                     _runs.c.started_at.type)
        return time_filters(started, *window)

    def _cited(self, window: tuple[Any, Any]) -> dict[Any, list[Any]]:
        """In-prompt citations per document (answers citing it), by group."""
        app = self.app_only
        stmt = (sa.select(*([_runs.c.app_name.label("g")] if app else []),
                          _links.c.document_id.label("doc"),
                          sa.func.count(sa.distinct(_links.c.trace_id)).label("answers"),
                          sa.func.max(_links.c.trace_id).label("hi"))
                .select_from(_links.join(_runs, _runs.c.id == _links.c.run_id))
                .where(_links.c.stage == DocStage.IN_PROMPT.value, *self._link_window(window))
                .group_by(*([_runs.c.app_name] if app else []), _links.c.document_id))
        out: dict[Any, list[Any]] = {}
        for r in self.conn.execute(stmt):
            out.setdefault(r._mapping["g"] if app else None, []).append(r._mapping)
        return out

    def _answers(self, window: tuple[Any, Any], top: dict[Any, list[str]]
                 ) -> tuple[dict[Any, Any], dict[Any, Any]]:
        """Answers with an in-prompt document, and those citing one of their group's
        ``top`` documents, by group: one pass over the window's citations."""
        app = self.app_only
        group = _runs.c.app_name
        pairs = [(key, doc) for key, docs in top.items() for doc in docs]
        # Outside SQL: the group's top documents as (group, document) pairs.
        chosen: sa.ColumnElement[bool] = sa.false()
        if pairs and app:
            chosen = sa.tuple_(_runs.c.app_name, _links.c.document_id).in_(pairs)
        elif pairs:
            chosen = _links.c.document_id.in_([doc for _, doc in pairs])
        cited = sa.case((chosen, _links.c.trace_id), else_=None)
        stmt = (sa.select(*([group.label("g")] if app else []),
                          sa.func.count(sa.distinct(_links.c.trace_id)).label("answers"),
                          sa.func.max(_links.c.trace_id).label("hi"),
                          sa.func.count(sa.distinct(cited)).label("top_answers"),
                          sa.func.max(cited).label("top_hi"))
                .select_from(_links.join(_runs, _runs.c.id == _links.c.run_id))
                .where(_links.c.stage == DocStage.IN_PROMPT.value, *self._link_window(window))
                .group_by(*([group] if app else [])))
        totals: dict[Any, Any] = {}
        tops: dict[Any, Any] = {}
        for r in self.conn.execute(stmt):
            key = r._mapping["g"] if app else None
            totals[key] = {"answers": r.answers, "hi": r.hi}
            if r.top_answers:
                tops[key] = {"answers": r.top_answers, "hi": r.top_hi}
        return totals, tops

    def _documents(self) -> None:
        n = self.t.top_documents
        base_all = self._cited(self.windows["baseline"])
        cur_all = self._cited(self.windows["current"])
        # Each window's own top documents: chosen on the data they are counted in,
        # both shares carry the same selection bias, which then cancels out.
        top_b = {key: sorted(rows, key=lambda r: (-r["answers"], r["doc"]))[:n]
                 for key, rows in base_all.items()}
        top_c = {key: sorted(rows, key=lambda r: (-r["answers"], r["doc"]))[:n]
                 for key, rows in cur_all.items()}
        both = set(base_all) & set(cur_all)
        totals_b, tops_b = self._answers(self.windows["baseline"], {
            k: [r["doc"] for r in top_b[k]] for k in both})
        totals_c, tops_c = self._answers(self.windows["current"], {
            k: [r["doc"] for r in top_c[k]] for k in both})
        for key in sorted(both, key=repr):
            tb = int(totals_b.get(key, {}).get("answers", 0) or 0)
            tc = int(totals_c.get(key, {}).get("answers", 0) or 0)
            if not tb or not tc:
                continue
            top_docs = [r["doc"] for r in top_b[key]]
            cb, cc = tops_b.get(key), tops_c.get(key)
            kb = int(cb["answers"]) if cb else 0
            kc = int(cc["answers"]) if cc else 0
            rb, rc = kb / tb, kc / tc
            self.add(DriftFinding(
                dimension="top_document_share", group=self._group(key),
                subject=f"top {n} documents", baseline=rb, current=rc,
                change=rc - rb, confidence=_chi2([[kb, tb - kb], [kc, tc - kc]]),
                baseline_count=tb, current_count=tc,
                message=f"answers citing their window's top {n} documents: "
                        f"{_pct(rb)} → {_pct(rc)}",
                baseline_examples=[cb["hi"]] if cb else [],
                current_examples=[cc["hi"]] if cc else [],
            ), moved=abs(rc - rb) >= self.t.top_share_change)
            base_counts = {r["doc"]: r for r in base_all[key]}
            cur_counts = {r["doc"]: r for r in cur_all[key]}
            tested = len(top_c[key]) + len(top_b[key])  # per-document tests: Bonferroni
            for r in top_c[key]:
                if r["doc"] in top_docs:
                    continue
                before = base_counts.get(r["doc"])
                kb1, kc1 = (int(before["answers"]) if before else 0), int(r["answers"])
                sb, sc = kb1 / tb, kc1 / tc
                self.add(DriftFinding(
                    dimension="documents_newly_dominant", group=self._group(key),
                    subject=r["doc"], baseline=sb, current=sc, change=sc - sb,
                    confidence=_bonferroni(_chi2([[kb1, tb - kb1], [kc1, tc - kc1]]), tested),
                    baseline_count=tb, current_count=tc,
                    message=f"document {r['doc']} now among the top {n}: cited by "
                            f"{_pct(sb)} → {_pct(sc)} of answers",
                    baseline_examples=[before["hi"]] if before else [],
                    current_examples=[r["hi"]],
                ), moved=sc - sb >= self.t.document_share_change)
            for r in top_b[key]:
                if r["doc"] in cur_counts:
                    continue
                kb1 = int(r["answers"])
                sb = kb1 / tb
                self.add(DriftFinding(
                    dimension="documents_gone", group=self._group(key), subject=r["doc"],
                    baseline=sb, current=0.0, change=-sb,
                    confidence=_bonferroni(_chi2([[kb1, tb - kb1], [0, tc]]), tested),
                    baseline_count=tb, current_count=tc,
                    message=f"document {r['doc']}, cited by {_pct(sb)} of baseline answers, "
                            f"is cited by none now",
                    baseline_examples=[r["hi"]], current_examples=[],
                ), moved=sb >= self.t.document_share_change)

    # -- evaluations ------------------------------------------------------------------------

    def evaluations(self) -> None:
        app = self.app_only
        root = _tables.runs.alias("evaluated")
        score = sa.cast(_evals.c.score, sa.Float)
        passed = sa.case((_evals.c.passed.is_(True), 1), (_evals.c.passed.is_(False), 0),
                         else_=None)
        per: dict[str, dict[Any, Any]] = {}
        for name, window in self.windows.items():
            group = [root.c.app_name.label("g")] if app else []
            stmt = (sa.select(*group, _evals.c.name.label("name"),
                              _evals.c.vendor_name.label("vendor"),
                              sa.func.count(score).label("n"), sa.func.avg(score).label("mean"),
                              sa.func.avg(score * score).label("sq"),
                              sa.func.count(passed).label("pn"),
                              sa.func.sum(passed).label("passed"),
                              sa.func.max(_evals.c.trace_id).label("hi"))
                    .select_from(_evals.join(root, root.c.id == _evals.c.trace_id))
                    .where(*time_filters(root.c.started_at, *window))
                    .group_by(*group, _evals.c.name, _evals.c.vendor_name))
            per[name] = {((r._mapping["g"] if app else None), r.name, r.vendor): r._mapping
                         for r in self.conn.execute(stmt)}
        for full in sorted(set(per["baseline"]) & set(per["current"]), key=repr):
            key, ev_name, vendor = full
            b, c = per["baseline"][full], per["current"][full]
            subject = f"{ev_name} ({vendor})"
            nb, nc = int(b["n"] or 0), int(c["n"] or 0)
            if nb and nc:
                mb, mc = float(b["mean"]), float(c["mean"])
                self.add(DriftFinding(
                    dimension="evaluation_mean", group=self._group(key), subject=subject,
                    baseline=mb, current=mc, change=mc - mb,
                    confidence=_welch(nb, mb, _variance(nb, mb, float(b["sq"])), nc, mc,
                                      _variance(nc, mc, float(c["sq"]))),
                    baseline_count=nb, current_count=nc,
                    message=f"mean {subject} score: {mb:.3f} → {mc:.3f}",
                    baseline_examples=[b["hi"]], current_examples=[c["hi"]],
                ), moved=abs(mc - mb) >= self.t.score_change)
            pb, pc = int(b["pn"] or 0), int(c["pn"] or 0)
            if pb and pc:
                kb, kc = int(b["passed"] or 0), int(c["passed"] or 0)
                rb, rc = kb / pb, kc / pc
                self.add(DriftFinding(
                    dimension="evaluation_pass_rate", group=self._group(key), subject=subject,
                    baseline=rb, current=rc, change=rc - rb,
                    confidence=_chi2([[kb, pb - kb], [kc, pc - kc]]),
                    baseline_count=pb, current_count=pc,
                    message=f"{subject} pass rate: {_pct(rb)} → {_pct(rc)}",
                    baseline_examples=[b["hi"]], current_examples=[c["hi"]],
                ), moved=abs(rc - rb) >= self.t.rate_change)


def _greatest(a: Any, b: Any) -> Any:
    return b if a is None else a if b is None else max(a, b)


def _bonferroni(confidence: float | None, tests: int) -> float | None:
    """The confidence of one of ``tests`` comparisons made together."""
    if confidence is None:
        return None
    return max(0.0, 1.0 - (1.0 - confidence) * max(1, tests))


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _nearest(rows: list[Any], value: float) -> str:
    return str(min(rows, key=lambda r: abs(r.duration_ms - value)).id)


def _window(value: Any, name: str) -> tuple[datetime | None, datetime | None]:
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ConfigError(f"{name} must be a (start, end) pair, got {value!r}")
    start, end = parse_time(value[0], f"{name} start"), parse_time(value[1], f"{name} end")
    if start is not None and end is not None and start >= end:
        raise ConfigError(f"{name} starts at {start.isoformat()}, not before its end "
                          f"{end.isoformat()}")
    return start, end


def drift(engine: Engine, *, baseline: Window, current: Window,
          group_by: Sequence[str] | str = ("app_name",),
          thresholds: DriftThresholds | None = None, summaries: bool = True) -> DriftReport:
    """Compare the ``current`` window with the ``baseline`` one (see module docstring).

    Each window is ``(start, end)``: datetimes or ISO strings, ``None`` for open.
    ``summaries`` False reads everything from the stored rows alone (the same report;
    for checking the per-day summaries).
    """
    keys = _keys(group_by)
    windows = {"baseline": _window(baseline, "baseline"), "current": _window(current, "current")}
    limits = thresholds or DriftThresholds()
    _stats()  # fail early, with the extra to install
    with engine.connect() as conn:
        work = _Drift(conn, keys, windows, limits, summaries)
        work.llm()
        work.traces()
        work.retrieval()
        work.evaluations()
    return DriftReport(baseline=windows["baseline"], current=windows["current"], group_by=keys,
                       thresholds=limits, comparisons=work.comparisons,
                       distributions=work.distributions)
