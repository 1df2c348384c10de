"""The README's cost comparison quotes a committed benchmark results file, and says so.

Every ratio range in the README's "Cost per invocation" row is recomputed here from the
results file that row names (median ratio to no callbacks over invoke, stream and a
batch of 8, one interleaved run), so the README cannot show figures its own results do
not hold, or keep old ones after the file changes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
FORMS = ("invoke", "stream", "batch8")
_RANGE = r"(x\d+\.\d-\d+\.\d)"

#: (what the README says, framework, configuration of the results file)
CLAIMS = [
    (rf"LangChain RAG chain {_RANGE}", "langchain", "ragtrail_sqlite"),
    (rf"stored in SQLite \(PostgreSQL {_RANGE}\)", "langchain", "ragtrail_pg"),
    (rf"LlamaIndex query engine {_RANGE}", "llamaindex", "ragtrail_sqlite"),
    (rf"LlamaIndex query engine x[\d.-]+ \(PostgreSQL {_RANGE}\)", "llamaindex", "ragtrail_pg"),
    (rf"run collector {_RANGE}", "langchain", "lc_run_collector"),
    (rf"Langfuse {_RANGE} and", "langchain", "langfuse"),
    (rf"Langfuse x[\d.-]+ and {_RANGE}", "llamaindex", "langfuse"),
    (rf"OpenInference {_RANGE} and", "langchain", "openinference"),
    (rf"OpenInference x[\d.-]+ and {_RANGE}", "llamaindex", "openinference"),
]


def _row() -> str:
    rows = [line for line in README.splitlines() if line.startswith("| Cost per invocation")]
    assert len(rows) == 1, "the README's comparison has one cost row"
    return rows[0]


def _results() -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    found = re.search(r"`(benchmarks/results/[\w.-]+\.json)`", _row())
    assert found, "the cost row names the results file its figures come from"
    data = json.loads((ROOT / found.group(1)).read_text())
    overhead: dict[str, dict[str, dict[str, dict[str, float]]]] = \
        data["benchmarks"]["overhead"]
    return overhead


def _range(overhead: dict[str, dict[str, dict[str, dict[str, float]]]], framework: str,
           config: str) -> str:
    ratios = [overhead[framework][form][config]["ratio_median"] for form in FORMS]
    return f"x{min(ratios):.1f}-{max(ratios):.1f}"


@pytest.mark.parametrize(("pattern", "framework", "config"), CLAIMS,
                         ids=[f"{fw}-{config}" for _, fw, config in CLAIMS])
def test_each_quoted_range_is_what_the_results_file_holds(pattern: str, framework: str,
                                                          config: str) -> None:
    found = re.search(pattern, _row())
    assert found, f"the cost row no longer quotes {framework} {config} ({pattern})"
    assert found.group(1) == _range(_results(), framework, config)


def test_the_range_is_computed_from_every_form() -> None:
    # A guard on the check itself: changing one form's ratio changes the range.
    overhead = json.loads(json.dumps(_results()))
    before = _range(overhead, "langchain", "ragtrail_sqlite")
    overhead["langchain"]["batch8"]["ragtrail_sqlite"]["ratio_median"] = 9.0
    assert _range(overhead, "langchain", "ragtrail_sqlite") != before


def test_ragtrail_on_sqlite_is_below_langfuse_and_openinference_on_every_form() -> None:
    # The sentence under the table says so for the run it quotes.
    assert "On SQLite, ragtrail cost less than Langfuse and OpenInference on every form" \
        in README
    overhead = _results()
    for framework in ("langchain", "llamaindex"):
        for form in FORMS:
            entry = overhead[framework][form]
            peers = min(entry["langfuse"]["ratio_median"], entry["openinference"]["ratio_median"])
            assert entry["ragtrail_sqlite"]["ratio_median"] < peers, (framework, form)
