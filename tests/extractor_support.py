"""Shared parts of the adapters' extractor tests (tests/langchain/test_langchain_extractors.py, tests/llamaindex/test_llamaindex_extractors.py).

Each adapter declares, per framework event kind, one tuple of named extractors run
through one guard (``ragtrail.capture.extract``). The tests make one entry raise at a
time while a real framework object runs, and compare what was captured with a run in
which nothing failed: the records are all there, only the fields that extractor reads
are lost, and its failure is counted under its name.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from ragtrail.guard import error_counter
from ragtrail.schemas import CapturedRun
from ragtrail.testing import CapturingTrail, capture_records

Scenario = Callable[[CapturingTrail], None]

#: Record fields that differ from one run of the same code to the next (ids, clocks).
_VOLATILE_RUN = {"id", "trace_id", "parent_id", "path", "started_at", "ended_at",
                 "duration_ms", "schema_version", "environment"}
_VOLATILE_METADATA = {"llamaindex_event_ids"}  # LlamaIndex's random callback event ids
#: Ids made up afresh on every run (uuids, a mock model's tool call ids, a workflow's run id).
_RANDOM_ID = re.compile(r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}"
                        r"|\"llamaindex\.run_id\": \"[A-Za-z0-9]+\"|mock-tool-call-[0-9a-f]+")


def _stable(value: Any) -> str:
    """``value`` as JSON with the ids made up per run replaced."""
    return _RANDOM_ID.sub("<id>", json.dumps(value, sort_keys=True, default=str))
_VOLATILE_LLM = {"request_timestamp", "response_timestamp", "performance_metrics",
                 "schema_version"}


def declared_lists(module: Any) -> dict[str, tuple[Callable[..., Any], ...]]:
    """The tuples of extractors a module declares (``UPPER_CASE`` names in ``__all__``)."""
    found = {name: getattr(module, name) for name in module.__all__ if name.isupper()}
    assert found and all(isinstance(v, tuple) and v and all(callable(f) for f in v)
                         for v in found.values())
    return found


def extractor_cases(module: Any) -> list[Any]:
    """One pytest param per (declared list, entry): every extractor is covered."""
    return [pytest.param(name, index, id=f"{name}-{fn.__name__}")
            for name, extractors in declared_lists(module).items()
            for index, fn in enumerate(extractors)]


def _in_tree_order(records: list[CapturedRun]) -> list[tuple[str, CapturedRun]]:
    """Records with a label that does not depend on ids or on the order parallel
    branches finished in: the names from the root down, then the inputs."""
    by_id = {record.run.id: record.run for record in records}

    def names(run: Any) -> str:
        path = [run.name]
        while run.parent_id in by_id:
            run = by_id[run.parent_id]
            path.append(run.name)
        return "/".join(reversed(path))

    seen: dict[str, int] = {}
    labelled = []
    for record in sorted(records, key=lambda r: (names(r.run), _stable(r.run.inputs))):
        path = names(record.run)
        seen[path] = seen.get(path, 0) + 1
        labelled.append((f"{path}#{seen[path]}", record))
    return labelled


def snapshot(records: list[CapturedRun]) -> dict[str, Any]:
    """What was captured, flat: ``"<label>|<field>" -> value`` (see ``_in_tree_order``),
    without ids and clocks (nor the rate limits' reset times, taken from the clock)."""
    flat: dict[str, Any] = {}
    for label, record in _in_tree_order(records):
        run = record.run
        for field, value in run.model_dump(mode="json").items():
            if field in _VOLATILE_RUN:
                continue
            if field == "events":
                value = [(e.get("name"), e.get("data")) for e in value]
            if field == "metadata" and isinstance(value, dict):
                for key, item in value.items():
                    if key not in _VOLATILE_METADATA:
                        flat[f"{label}|metadata.{key}"] = item
                continue
            flat[f"{label}|{field}"] = value
        if record.llm is not None:
            llm = record.llm.model_dump(mode="json")
            flat[f"{label}|llm.ttft"] = (record.llm.performance_metrics is not None
                                         and record.llm.performance_metrics.time_to_first_token_ms is not None)
            for field, value in llm.items():
                if field in _VOLATILE_LLM:
                    continue
                if isinstance(value, dict) and field == "rate_limit_info":
                    value = {k: v for k, v in value.items() if "reset" not in k}
                if isinstance(value, dict) and field == "provider_specific":
                    for key, item in value.items():
                        flat[f"{label}|llm.provider_specific.{key}"] = item
                    continue
                flat[f"{label}|llm.{field}"] = value
        flat[f"{label}|links"] = sorted((link.stage.value, link.rank, link.content_hash,
                                         link.input_rank) for link in record.links)
        flat[f"{label}|documents"] = sorted(doc.content_hash for doc in record.documents)
    return {path: _stable(value) for path, value in flat.items()}


def run_with_spy(scenario: Scenario, module: Any, list_name: str, index: int,
                 monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, Any], set[str]]:
    """Run the scenario with entry ``index`` of ``list_name`` spied on: (what was
    captured, the keys that entry returned with a value at least once)."""
    extractors = getattr(module, list_name)
    real = extractors[index]
    produced: set[str] = set()

    @functools.wraps(real)
    def spy(event: Any) -> Any:
        found = real(event)
        produced.update(k for k, v in (found or {}).items() if v is not None)
        return found

    with monkeypatch.context() as patch:
        patch.setattr(module, list_name, (*extractors[:index], spy, *extractors[index + 1:]))
        with capture_records() as captured:
            scenario(captured)
    return snapshot(captured.records), produced


def run_with_failure(scenario: Scenario, module: Any, list_name: str, index: int,
                     monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, Any], int]:
    """Run the scenario with entry ``index`` of ``list_name`` raising: (what was
    captured, how many failures were counted under the entry's name)."""
    extractors = getattr(module, list_name)
    real = extractors[index]

    @functools.wraps(real)
    def failing(event: Any) -> Any:
        raise RuntimeError(f"injected: {real.__name__} failed")

    where = f"{real.__module__}.{real.__qualname__}"
    before = error_counter.snapshot().get(where, 0)
    with monkeypatch.context() as patch:
        patch.setattr(module, list_name, (*extractors[:index], failing, *extractors[index + 1:]))
        with capture_records() as captured:
            scenario(captured)  # never raises into the application
    return snapshot(captured.records), error_counter.snapshot().get(where, 0) - before


def check_one_extractor(scenario: Scenario, module: Any, list_name: str, index: int,
                        monkeypatch: pytest.MonkeyPatch,
                        fields_of: Mapping[str, tuple[str, ...]],
                        recovered: frozenset[tuple[str, str]] = frozenset()) -> None:
    """The assertion of the extractor tests (see the module docstring).

    ``fields_of``: for each key an extractor may return, the record fields it ends up
    in (a field named ``x`` covers ``x`` and ``x.*`` of every run). ``recovered``:
    (tuple, extractor) pairs whose fields the adapter finds again elsewhere when they
    are lost (the record is then unchanged).
    """
    baseline, produced = run_with_spy(scenario, module, list_name, index, monkeypatch)
    assert produced, f"the scenario of {list_name} gives {index} nothing to read"
    failed, counted = run_with_failure(scenario, module, list_name, index, monkeypatch)
    assert counted >= 1  # the failure is counted under the extractor's name
    failed = _aligned(baseline, failed)  # every record is there
    changed = {path.split("|", 1)[1] for path in baseline.keys() | failed.keys()
               if baseline.get(path) != failed.get(path)}
    if not changed:  # found again elsewhere: say where
        assert (list_name, extractors_name(module, list_name, index)) in recovered, \
            f"{sorted(produced)} lost nothing"
        return
    unknown = produced - fields_of.keys()
    assert not unknown, f"say which record fields {sorted(unknown)} end up in"
    allowed = {field for key in produced for field in fields_of[key]}
    stray = {path for path in changed
             if not any(path == f or path.startswith(f + ".") for f in allowed)}
    assert not stray, f"{sorted(produced)} failing changed {sorted(stray)} too"


def extractors_name(module: Any, list_name: str, index: int) -> str:
    """The name of entry ``index`` of a declared tuple."""
    return str(getattr(module, list_name)[index].__name__)


def _aligned(baseline: dict[str, Any], failed: dict[str, Any]) -> dict[str, Any]:
    """``failed`` with the labels of runs whose own name was lost (a reranker named
    after its model) matched to their baseline labels: same parent path, in order. Fails
    when a record is missing."""
    def labels(snap: dict[str, Any]) -> set[str]:
        return {path.split("|")[0] for path in snap}

    only_baseline = sorted(labels(baseline) - labels(failed))
    only_failed = sorted(labels(failed) - labels(baseline))
    assert len(only_baseline) == len(only_failed)
    rename = {}
    for new, old in zip(only_failed, only_baseline, strict=True):
        assert new.rpartition("/")[0] == old.rpartition("/")[0]
        rename[new] = old
    return {rename.get(path.split("|")[0], path.split("|")[0]) + "|" + path.split("|", 1)[1]:
            value for path, value in failed.items()}
