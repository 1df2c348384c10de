"""Every benchmark runs end to end at a tiny size, so none of them can rot.

``make bench`` runs them at full size (see BENCHMARKS.md); here ``--quick`` only checks
that each one still runs against the current code and reports what it should.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from ragtrail.schemas import DocStage, RunKind

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks import _instructions  # noqa: E402
from benchmarks._data import RUNS_PER_TRACE, TraceFactory  # noqa: E402
from benchmarks.report import instructions, render  # noqa: E402

TIMED = ("overhead", "offload", "ingest", "scale", "memory")


def _bench(tmp_path: Path, *args: str) -> dict:
    output = tmp_path / "results.json"
    env = dict(os.environ)
    env["RAGTRAIL_BENCH_POSTGRES_URL"] = env.get("RAGTRAIL_TEST_POSTGRES_URL") or "none"
    if env["RAGTRAIL_BENCH_POSTGRES_URL"] == "none":
        args = (*args, "--pg-url", "none")
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--output", str(output),
         "--cache-dir", str(tmp_path / "cache"), *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240, check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(output.read_text(encoding="utf-8"))


def test_every_benchmark_runs_and_reports(tmp_path: Path) -> None:
    # The instructions benchmark runs under valgrind (minutes): tested on its own below.
    results = _bench(tmp_path, *(f"--only={name}" for name in TIMED), "--ingest-pairs", "2")
    bench = results["benchmarks"]
    assert set(bench) == {"overhead", "offload", "ingest", "scale", "memory"}
    assert results["machine"]["cores"] and results["versions"]["ragtrail"]
    for framework in ("langchain", "llamaindex"):
        for workload in ("invoke", "stream", "batch8"):
            stats = bench["overhead"][framework][workload]
            assert stats["none"]["ratio_median"] == 1.0
            assert stats["ragtrail_sqlite"]["median_ms"] > 0
            assert stats["noop_handler"]["n"] == stats["ragtrail_sqlite"]["n"] > 0
    for workload in ("invoke", "stream", "batch8"):
        floor = bench["overhead"]["langchain"][workload]["floor_to_json_sqlite"]
        assert floor["n"] == bench["overhead"]["langchain"][workload]["none"]["n"] > 0
    for name, stats in bench["overhead"]["ragtrail_stats"].items():
        assert stats["writer"]["stored"] > 0, name  # the measured runs were really stored
    offload = bench["offload"]
    assert set(offload["langchain_invoke"]) == {
        "none", "none_second_core_busy", "handoff_only", "handoff_to_json", "offload_replay",
        "ragtrail_sqlite"}
    received = offload["events_received"]
    # Every callback crossed the process boundary, and the replay stored what
    # ragtrail in-process stored: the configurations did the same work.
    assert received["handoff_only"] == received["handoff_to_json"] == received["offload_replay"]
    assert received["offload_replay"] > 0
    assert offload["stored"]["offload_replay"] == offload["stored"]["ragtrail_sqlite"] > 0
    sqlite = bench["ingest"]["sqlite"]
    runs = bench["ingest"]["runs"]
    drain = sqlite["drain"]  # the outage backlog's drain time is a figure, reported here
    assert drain["complete"] and drain["runs_in_database"] == drain["backlog"] + drain["fresh"]
    assert drain["drain_s"] >= 0 and drain["target_drain_s"] == 20
    assert drain["offer_while_down_p99_us"] > 0
    assert sqlite["writer"]["runs_in_database"] == sqlite["store"]["runs"] == runs
    assert sqlite["store"]["runs_per_s"] > 0
    assert sqlite["ceiling_no_fsync"]["runs"] == sqlite["ceiling"]["runs"] == runs
    for kind in ("writer", "ceiling"):  # two alternating pairs, the best of each compared
        assert len(sqlite[kind]["samples"]) == 2
        assert sqlite[kind]["runs_per_s"] == max(sqlite[kind]["samples"])
    assert sqlite["writer"]["complete"]
    versus = sqlite["writer_vs_ceiling"]  # the target: the writer against the bare driver
    assert versus["target"] == 0.9 and versus["met"] == (versus["ratio"] >= 0.9)
    assert versus["ratio"] == sqlite["writer"]["runs_per_s"] / sqlite["ceiling"]["runs_per_s"]
    assert sqlite["writer"]["cpu_seconds"] > 0 and sqlite["ceiling"]["cpu_us_per_run"] > 0
    scale = bench["scale"]["sqlite"]
    assert scale["runs"] == bench["scale"]["runs"] and scale["lineage"]["n"] > 0
    assert scale["lineage"]["mean_result_size"] == RUNS_PER_TRACE
    assert scale["usage_model"]["mean_result_size"] >= 1
    assert bench["memory"]["invocations"] > 0 and bench["memory"]["flushed"]
    gc_default, gc_frozen = bench["memory"]["gc"]["default"], bench["memory"]["gc"]["frozen"]
    assert gc_default["invocations"] == bench["memory"]["invocations"]
    assert set(gc_default["collections"]) == {"0", "1", "2"} and gc_frozen["invocations"] >= 1
    assert gc_default["ms_per_invocation"] >= gc_default["full_ms_per_invocation"] >= 0

    rendered = render(results)  # the Markdown of BENCHMARKS.md's Results
    for section in ("### overhead", "### offload", "### ingest", "### scale", "### memory", "### targets"):
        assert section in rendered, section
    assert "| langchain invoke, ragtrail on SQLite | <= run collector (x" in rendered
    assert "| llamaindex batch8, ragtrail on SQLite | <= x1.6 | x" in rendered
    assert ("| ingestion into sqlite: background writer / bare driver "
            "| >= 90 % of the ceiling, same run |") in rendered

    again = _bench(tmp_path, "--only", "scale")  # the generated database is reused
    assert again["benchmarks"]["scale"]["sqlite"]["cached"] is True


def test_the_critical_path_and_bytes_benchmarks_measure_ragtrail(tmp_path: Path) -> None:
    results = _bench(tmp_path, "--only", "critical", "--only", "bytes")
    critical, stored = results["benchmarks"]["critical"], results["benchmarks"]["bytes"]
    for framework in ("langchain", "llamaindex"):
        noop, ragtrail = critical[framework]["noop_handler"], critical[framework]["ragtrail_sqlite"]
        for entry in (noop, ragtrail):
            assert entry["cpu"]["n"] == entry["wall"]["n"] == critical["invocations"] > 0
            assert entry["callbacks_per_invocation"] > 0  # the handler's callbacks were timed
            assert 0 < entry["cpu"]["p50_us"] <= entry["cpu"]["p99_us"]
        # Converting, bounding and redacting every step's payloads costs more than the
        # clocks around a handler that does nothing.
        assert ragtrail["cpu"]["mean_us"] > noop["cpu"]["mean_us"]
    backends = ["sqlite"] + (["postgresql"] if "skipped" not in stored["postgresql"] else [])
    for backend in backends:
        for framework in ("langchain", "llamaindex"):
            growth = stored[backend][framework]
            assert growth["size_after"] > growth["size_before"] > 0
            assert growth["bytes_per_invocation"] > 0 and growth["per_table"]["runs"] > 0
    rendered = render(results)
    assert "### critical" in rendered and "### bytes" in rendered
    assert "| sqlite | langchain |" in rendered


def test_generated_traces_have_the_promised_shape() -> None:
    factory = TraceFactory(50)
    records = factory.trace(7)
    assert len(records) == RUNS_PER_TRACE
    assert len({r.run.trace_id for r in records}) == 1
    llm = [r for r in records if r.llm is not None]
    assert len(llm) == 1 and llm[0].run.kind is RunKind.LLM
    assert llm[0].llm.token_usage is not None and llm[0].llm.cost_metrics.total_cost > 0
    retrieved = [link for r in records for link in r.links if link.stage is DocStage.RETRIEVED]
    assert len(retrieved) == 5
    assert factory.trace(7)[0].run.id == records[0].run.id  # deterministic
    # Documents are reused across traces: 50 traces draw from a 50-chunk corpus.
    used = {link.content_hash for i in range(50) for r in factory.trace(i) for link in r.links}
    assert len(used) < 50 * 5


def test_the_floor_handler_stores_every_step_payload(tmp_path: Path) -> None:
    from benchmarks._floor import floor_handler
    from lc_support import build_rag_chain

    handler, flush = floor_handler(tmp_path / "floor.db")
    answer = build_rag_chain().invoke("what is wal", config={"callbacks": [handler]})
    flush()
    with sqlite3.connect(tmp_path / "floor.db") as conn:
        rows = conn.execute("SELECT kind, payload FROM events").fetchall()
    kinds = [kind for kind, _ in rows]
    assert {"chain", "retriever", "llm", "end"} <= set(kinds)
    assert kinds.count("end") == len(kinds) - kinds.count("end")  # every start has its end
    assert any(str(answer) in bytes(payload).decode() for kind, payload in rows if kind == "end")


@pytest.mark.parametrize("framework", _instructions.FRAMEWORKS)
def test_every_instruction_count_configuration_runs_its_workload(
        framework: str, tmp_path: Path) -> None:
    # Without valgrind: each configuration's child process sets up, runs and flushes
    # (switching callgrind's instrumentation is a no-op outside valgrind).
    for config in _instructions.CONFIGS:
        work = tmp_path / config
        work.mkdir()
        done = subprocess.run([sys.executable, "-m", "benchmarks._instructions", framework,
                               config, "2", str(work)], cwd=ROOT, capture_output=True,
                              text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr[-3000:]
        stored = work / "trail.db"
        assert stored.exists() == (config == "ragtrail_sqlite"), config
        if config == "ragtrail_sqlite":
            with sqlite3.connect(stored) as db:  # warm-up and counted invocations stored
                roots = db.execute("SELECT count(*) FROM runs WHERE parent_id IS NULL")
                assert roots.fetchone()[0] == _instructions.WARMUP + 2


def test_instruction_counts_are_reported_with_ratios_and_the_storage_share() -> None:
    counts = {"none": 10_000_000, "noop_handler": 10_500_000, "ragtrail_capture": 16_000_000,
              "ragtrail_sqlite": 20_000_000}
    data = {"invocations": 20, "workload": "invoke", "langchain": {
        **{name: {"instructions": value, "ratio": value / counts["none"]}
           for name, value in counts.items()},
        "storage_instructions": 4_000_000,
        "ragtrail_sqlite_threads": {"application": 15_000_000, "writer": 5_500_000}}}
    lines = instructions(data)
    assert ("| langchain | 10.00 M (x1.00) | 10.50 M (x1.05) | 16.00 M (x1.60) "
            "| 20.00 M (x2.00) | 4.00 M |") in lines
    assert ("- langchain ragtrail_sqlite by thread: application 15.00 M, ragtrail's writer "
            "5.50 M") in lines
    assert instructions({"skipped": "valgrind not found"}) == ["skipped: valgrind not found"]


@pytest.mark.skipif(_instructions.unavailable() is not None,
                    reason=f"{_instructions.unavailable()}")
def test_instructions_are_counted_under_callgrind(tmp_path: Path) -> None:
    counted = _instructions.count("langchain", "none", 1, tmp_path)
    # One invocation of the LCEL chain is millions of instructions; the imports before
    # the instrumentation was switched on (hundreds of millions) are not counted.
    assert 1_000_000 < counted < 100_000_000


def test_the_startup_benchmark_times_the_cli_with_and_without_bytecode(tmp_path: Path) -> None:
    results = _bench(tmp_path, "--only", "startup")
    startup = results["benchmarks"]["startup"]
    assert startup["targets_s"] == {"help": 0.25, "traces": 0.5}
    for setup in ("cached", "no_bytecode_cache"):
        for name in ("python_floor", "help", "traces"):
            assert startup[setup][name]["n"] == startup["runs"] >= 1
            assert startup[setup][name]["median_ms"] > 0
            assert startup[setup][name]["cpu_median_ms"] > 0
    assert startup["no_bytecode_cache"]["pyc_written"] == 0
    rendered = render(results)
    assert "### startup" in rendered
    assert "| `ragtrail --help` start-up, bytecode cached | <= 0.25 s |" in rendered
    assert "| `ragtrail traces` start-up, bytecode cached | <= 0.5 s |" in rendered


def test_the_drain_benchmark_replays_a_spooled_backlog(tmp_path: Path) -> None:
    from benchmarks import _drain
    from benchmarks._data import records
    from ragtrail.writer import WriterConfig

    recs = records(30)
    config = WriterConfig(spool_dir=tmp_path / "spool", max_queue_events=40, batch_max_events=10)
    result = _drain.run(f"sqlite:///{tmp_path / 'drain.db'}", recs[:200], recs[200:],
                        rate_per_s=200, spool_dir=tmp_path / "spool", config=config)
    assert result["spooled_at_recovery"] > 0  # the backlog waited on the disk
    assert result["complete"] and result["runs_in_database"] == len(recs) == 300
    assert result["stored"] == 300 and result["dropped"] == {}
    assert 0 <= result["drain_s"] <= result["all_stored_s"]
