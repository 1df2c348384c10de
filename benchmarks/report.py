"""Render a results JSON as the Markdown tables of BENCHMARKS.md.

    python -m benchmarks.report [benchmarks/results/latest.json]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

#: Issue 26's overhead targets (ratios of no callbacks, one interleaved run): LangChain at
#: or below its own in-memory run collector measured in the same run, LlamaIndex at most
#: x1.6, PostgreSQL within 5 % of SQLite on each form. (Issue 9's were x1.25 and x1.30.)
TARGETS = {"langchain": "run collector", "llamaindex": 1.6}
PG_WITHIN = 0.05


def _bound(framework: str) -> str:
    bound = TARGETS[framework]
    return ("at most LangChain's run collector (same run)" if bound == "run collector"
            else f"at most x{bound}")


def overhead(data: dict[str, Any]) -> list[str]:
    lines = []
    for framework in ("langchain", "llamaindex"):
        result = data.get(framework)
        if not result:
            continue
        lines += [f"**{framework}** (target for ragtrail on SQLite: {_bound(framework)}; "
                  f"PostgreSQL within {PG_WITHIN:.0%} of SQLite)",
                  "", "| configuration | invoke median ms (x none) | invoke p90 ms (x none) "
                  "| stream median ms (x none) | batch of 8 median ms (x none) |",
                  "| --- | --- | --- | --- | --- |"]
        for name in result["configs"]:
            cells = []
            for workload, key in (("invoke", "median"), ("invoke", "p90"), ("stream", "median"),
                                  ("batch8", "median")):
                entry = result.get(workload, {}).get(name)
                ms, ratio = (entry[f"{key}_ms"], entry.get(f"ratio_{key}")) if entry else (0, 0)
                cells.append(f"{ms:.2f} (x{ratio:.2f})" if entry else "-")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    for name, reason in data.get("skipped", {}).items():
        lines.append(f"- skipped `{name}`: {reason}")
    return lines


def offload(data: dict[str, Any]) -> list[str]:
    lines = ["LangChain invoke; the capture's work moved to another process (prototype)", "",
             "| configuration | median ms (x none) | p90 ms (x none) |", "| --- | --- | --- |"]
    for name, entry in data["langchain_invoke"].items():
        lines.append(f"| {name} | {entry['median_ms']:.2f} (x{entry['ratio_median']:.2f}) "
                     f"| {entry['p90_ms']:.2f} (x{entry['ratio_p90']:.2f}) |")
    stored = data["stored"]
    lines += ["", f"Runs stored: offload_replay {stored['offload_replay']:,}, "
              f"ragtrail_sqlite {stored['ragtrail_sqlite']:,}"]
    return lines


def ingest(data: dict[str, Any]) -> list[str]:
    lines = [f"{data['runs']:,} runs ({data['traces']:,} traces, {data['links']:,} document "
             f"links, {data['llm_calls']:,} LLM calls), batches of {data['batch']}", "",
             "| backend | background writer runs/s | SqlStore.write_batch runs/s "
             "| bare driver, pre-serialized rows (ceiling) runs/s "
             "| the same without fsync (SQLite) runs/s "
             "| writer / ceiling (target) | CPU us per run, writer / ceiling |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for backend in ("sqlite", "postgresql"):
        entry = data.get(backend, {})
        if "skipped" in entry:
            lines.append(f"| {backend} | skipped: {entry['skipped']} | | | | | |")
            continue
        lines.append(f"| {backend} | {entry['writer']['runs_per_s']:,.0f} "
                     f"| {entry['store']['runs_per_s']:,.0f} "
                     f"| {entry['ceiling']['runs_per_s']:,.0f} "
                     f"| {_rate(entry.get('ceiling_no_fsync'))} "
                     f"| {_versus(entry)} | {_cpu(entry['writer'])} / {_cpu(entry['ceiling'])} |")
    return lines


def _versus(entry: dict[str, Any]) -> str:
    """The writer's rate as a fraction of the bare driver's (results before the
    fifteenth round have no ratio: computed from the rates)."""
    ratio = entry.get("writer_vs_ceiling") or {
        "ratio": entry["writer"]["runs_per_s"] / entry["ceiling"]["runs_per_s"], "target": 0.9}
    met = "met" if ratio["ratio"] >= ratio["target"] else "missed"
    return f"{ratio['ratio']:.0%} (>= {ratio['target']:.0%}: {met})"


def _cpu(entry: dict[str, Any]) -> str:
    return f"{entry['cpu_us_per_run']:.0f}" if "cpu_us_per_run" in entry else "-"


def _rate(entry: dict[str, Any] | None) -> str:
    return f"{entry['runs_per_s']:,.0f}" if entry else "-"


def scale(data: dict[str, Any]) -> list[str]:
    lines = [f"{data['runs']:,} runs ({data['traces']:,} traces), generator v"
             f"{data['generator_version']}", "",
             "| query | SQLite p50 ms | SQLite p90 ms | SQLite first pass p50 ms "
             "| PostgreSQL p50 ms | PostgreSQL p90 ms | PostgreSQL first pass p50 ms "
             "| rows returned (mean) |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    sqlite, pg = data.get("sqlite", {}), data.get("postgresql", {})
    for key, entry in sqlite.items():
        if not isinstance(entry, dict):
            continue
        other = pg.get(key) if isinstance(pg.get(key), dict) else None
        pg_cells = (f"{other['p50_ms']:.2f} | {other['p90_ms']:.2f} "
                    f"| {other.get('first_pass_p50_ms', 0):.2f}") if other else "- | - | -"
        lines.append(f"| {key} | {entry['p50_ms']:.2f} | {entry['p90_ms']:.2f} "
                     f"| {entry.get('first_pass_p50_ms', 0):.2f} | {pg_cells} "
                     f"| {entry['mean_result_size']:.0f} |")
    return lines


def quality(data: dict[str, Any]) -> list[str]:
    if "skipped" in data:
        return [f"skipped: {data['skipped']}"]
    lines = [f"{data['runs']:,} runs ({data['traces']:,} traces), SQLite opened read-only; "
             "quality over everything stored, drift of the first 45 days against the next 45",
             "", "| call | first s | median s | target s | met |",
             "| --- | --- | --- | --- | --- |"]
    for key in ("quality", "drift"):
        entry = data[key]
        lines.append(f"| trail.{key}() | {entry['first_s']:.2f} | {entry['median_s']:.2f} | "
                     f"{data['targets_s'][key]:.0f} | {'yes' if entry['met'] else 'no'} |")
    return lines


def ui(data: dict[str, Any]) -> list[str]:
    if "skipped" in data:
        return [f"skipped: {data['skipped']}"]
    lines = [f"{data['runs']:,} runs ({data['traces']:,} traces), SQLite opened read-only; "
             "server time inside the ASGI app", "",
             "| web view (server time) | p50 ms | p90 ms | first pass p50 ms |",
             "| --- | --- | --- | --- |"]
    for group in ("ui_server", "query_layer"):
        if group == "query_layer":
            lines += ["", "| query layer alone | p50 ms | p90 ms | first pass p50 ms |",
                      "| --- | --- | --- | --- |"]
        for key, entry in data[group].items():
            lines.append(f"| {key} | {entry['p50_ms']:.2f} | {entry['p90_ms']:.2f} "
                         f"| {entry['first_pass_p50_ms']:.2f} |")
    return lines


def memory(data: dict[str, Any]) -> list[str]:
    summary = (f"{data['invocations']:,} LangChain invocations with ragtrail (SQLite) after "
               f"{data['warmup']:,} warm-up: RSS {data['rss_start_mib']:.1f} -> "
               f"{data['rss_end_mib']:.1f} MiB, growth **{data['growth_mib']:+.1f} MiB** "
               f"(peak {data['peak_mib']:.1f} MiB; {data['stored']:,} runs stored, dropped "
               f"{data['dropped']})")
    return [summary, *_gc_lines(data.get("gc"))]


def _gc_lines(data: dict[str, Any] | None) -> list[str]:
    if not data:
        return []
    default, frozen = data["default"], data["frozen"]
    return ["", f"Garbage collection over those invocations: "
                f"{default['ms_per_invocation']:.3f} ms per invocation, of which full "
                f"collections {default['full_ms_per_invocation']:.3f} ms (collections by "
                f"generation {default['collections']}); over {frozen['invocations']:,} more "
                f"after `gc.freeze()`: {frozen['ms_per_invocation']:.3f} ms, full "
                f"{frozen['full_ms_per_invocation']:.3f} ms"]


def instructions(data: dict[str, Any]) -> list[str]:
    if "skipped" in data:
        return [f"skipped: {data['skipped']}"]
    lines = [f"callgrind, {data['invocations']} `{data['workload']}` invocations after warm-up, "
             "all threads, flush included", "",
             "| framework | none | noop_handler | ragtrail_capture (null sink) "
             "| ragtrail_sqlite | of which storage |", "| --- | --- | --- | --- | --- | --- |"]
    for framework in ("langchain", "llamaindex"):
        entry = data.get(framework)
        if not entry:
            continue
        cells = [f"{entry[name]['instructions'] / 1e6:.2f} M (x{entry[name]['ratio']:.2f})"
                 for name in ("none", "noop_handler", "ragtrail_capture", "ragtrail_sqlite")]
        storage = entry["storage_instructions"] / 1e6
        lines.append(f"| {framework} | " + " | ".join(cells) + f" | {storage:.2f} M |")
    for framework in ("langchain", "llamaindex"):
        split = (data.get(framework) or {}).get("ragtrail_sqlite_threads")
        if split:
            lines.append(f"- {framework} ragtrail_sqlite by thread: application "
                         f"{split['application'] / 1e6:.2f} M, ragtrail's writer "
                         f"{split['writer'] / 1e6:.2f} M")
    return lines


def startup(data: dict[str, Any]) -> list[str]:
    lines = [f"`ragtrail` processes, {data['runs']} runs each, interleaved; demo database "
             f"from {data['database']}", "",
             "| command | bytecode cached: median, p90 (CPU) | PYTHONDONTWRITEBYTECODE=1, "
             "nothing cached: median, p90 (CPU) |", "| --- | --- | --- |"]
    for name, label in (("help", "ragtrail --help"), ("traces", "ragtrail traces"),
                        ("python_floor", "python -c pass (floor)")):
        cells = [f"{data[setup][name]['median_ms'] / 1000:.3f} s, "
                 f"{data[setup][name]['p90_ms'] / 1000:.3f} s "
                 f"({data[setup][name]['cpu_median_ms'] / 1000:.3f} s)"
                 for setup in ("cached", "no_bytecode_cache")]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def _ratio(results: dict[str, Any], framework: str, workload: str) -> tuple[str, str]:
    """(bound, measured) of the overhead target of ``framework``'s ``workload``."""
    entry = results["benchmarks"].get("overhead", {}).get(framework, {}).get(workload, {})
    rt = entry.get("ragtrail_sqlite")
    bound = TARGETS[framework]
    if bound == "run collector":
        collector = entry.get("lc_run_collector")
        limit = collector["ratio_median"] if collector else None
        shown = f"<= run collector (x{limit:.2f})" if limit else "<= run collector"
    else:
        limit, shown = float(bound), f"<= x{bound}"
    if not rt:
        return shown, "-"
    met = "" if limit is None else (": met" if rt["ratio_median"] <= limit else ": missed")
    return shown, f"x{rt['ratio_median']:.2f} (p90 x{rt['ratio_p90']:.2f}){met}"


def _pg_vs_sqlite(results: dict[str, Any], framework: str, workload: str) -> str:
    entry = results["benchmarks"].get("overhead", {}).get(framework, {}).get(workload, {})
    lite, pg = entry.get("ragtrail_sqlite"), entry.get("ragtrail_pg")
    if not lite or not pg:
        return "-"
    excess = pg["ratio_median"] / lite["ratio_median"] - 1
    return f"{excess:+.1%} (x{pg['ratio_median']:.2f} against x{lite['ratio_median']:.2f})" \
           f": {'met' if excess <= PG_WITHIN else 'missed'}"


def targets(results: dict[str, Any]) -> list[str]:
    """Each target of the issue next to what this run measured."""
    bench = results["benchmarks"]
    rows = []
    for framework in TARGETS:
        for workload in ("invoke", "stream", "batch8"):
            rows.append((f"{framework} {workload}, ragtrail on SQLite",
                         *_ratio(results, framework, workload)))
        for workload in ("invoke", "stream", "batch8"):
            rows.append((f"{framework} {workload}, ragtrail on PostgreSQL against SQLite",
                         f"<= +{PG_WITHIN:.0%}", _pg_vs_sqlite(results, framework, workload)))
    ingest = bench.get("ingest", {})
    for backend, goal in (("sqlite", None), ("postgresql", 15_000)):
        entry = ingest.get(backend, {})
        if "writer" in entry and "ceiling" in entry:
            rows.append((f"ingestion into {backend}: background writer / bare driver",
                         ">= 90 % of the ceiling, same run", _versus(entry)))
        if "writer" in entry and goal is not None:
            rows.append((f"ingestion into {backend}", f">= {goal:,} runs/s",
                         f"{entry['writer']['runs_per_s']:,.0f} runs/s (writer), "
                         f"{entry['store']['runs_per_s']:,.0f} (write_batch), "
                         f"ceiling {entry['ceiling']['runs_per_s']:,.0f}"
                         + (f", without fsync {_rate(entry['ceiling_no_fsync'])}"
                            if "ceiling_no_fsync" in entry else "")))
        drain = entry.get("drain")
        if drain:
            rows.append((f"backlog drain after an outage ({backend}: {drain['backlog']:,} "
                         f"waiting, {drain['fresh_per_s']:,}/s fresh)",
                         f"<= {drain['target_drain_s']:.0f} s",
                         f"{drain['drain_s']:.1f} s (all stored after "
                         f"{drain['all_stored_s']:.1f} s)"))
            rows.append((f"offer while the store is down ({backend})",
                         f"p99 <= {drain['target_offer_p99_us']:.0f} us",
                         f"p99 {drain['offer_while_down_p99_us']:.1f} us"))
    scale = bench.get("scale", {}).get("sqlite", {})
    for key, goal in (("lineage", "p50 <= 5 ms"), ("answers_using_id", "p50 <= 5 ms"),
                      ("answers_using_hash", "p50 <= 5 ms")):
        if key in scale:
            first = scale[key].get("first_pass_p50_ms")
            rows.append((f"{key} at {bench['scale']['runs']:,} runs (SQLite)", goal,
                         f"p50 {scale[key]['p50_ms']:.2f} ms (first pass {first:.2f} ms)"
                         if first is not None else f"p50 {scale[key]['p50_ms']:.2f} ms"))
    for key in ("usage_model", "usage_day"):
        if key in scale:
            rows.append((f"{key} over everything (SQLite)", "<= 1 s",
                         f"{scale[key]['p50_ms']:.0f} ms"))
    start = bench.get("startup")
    if start:
        for name, label in (("help", "`ragtrail --help`"), ("traces", "`ragtrail traces`")):
            rows.append((f"{label} start-up, bytecode cached", f"<= {start['targets_s'][name]} s",
                         f"{start['cached'][name]['median_ms'] / 1000:.3f} s, CPU "
                         f"{start['cached'][name]['cpu_median_ms'] / 1000:.3f} s (without "
                         f"bytecode cache: "
                         f"{start['no_bytecode_cache'][name]['median_ms'] / 1000:.3f} s, CPU "
                         f"{start['no_bytecode_cache'][name]['cpu_median_ms'] / 1000:.3f} s)"))
    web = bench.get("ui", {})
    for key, label in (("traces_page", "trace list page"), ("trace_detail_page",
                       "trace detail page"), ("usage_page", "usage page")):
        if key in web.get("ui_server", {}):
            layer = {"usage_page": "usage_page_queries"}.get(key, "")
            beside = web.get("query_layer", {}).get(layer)
            rows.append((f"{label} at {web['runs']:,} runs (SQLite, server time)",
                         f"p50 <= {web['targets_ms'][key]:.0f} ms",
                         f"p50 {web['ui_server'][key]['p50_ms']:.1f} ms" + (
                             f" (its queries {beside['p50_ms']:.1f} ms in the query layer)"
                             if beside else "")))
    checks = bench.get("quality", {})
    for key in ("quality", "drift"):
        if key in checks:
            rows.append((f"trail.{key}() at {checks['runs']:,} runs (SQLite)",
                         f"<= {checks['targets_s'][key]:.0f} s",
                         f"median {checks[key]['median_s']:.2f} s (first "
                         f"{checks[key]['first_s']:.2f} s)"))
    memory = bench.get("memory")
    if memory:
        rows.append((f"memory growth over {memory['invocations']:,} invocations", "<= 20 MB",
                     f"{memory['growth_mib']:+.1f} MiB"))
    return ["| target | bound | measured |", "| --- | --- | --- |",
            *(f"| {a} | {b} | {c} |" for a, b, c in rows)]


def export(data: dict[str, Any]) -> list[str]:
    """Export throughput with the ceilings measured in the same run (benchmarks/_export.py)."""
    rows = [
        ("OTLP: mapping (records -> spans)", f"{data['map_spans_per_s']:,.0f} spans/s", "-"),
        ("OTLP: mapping + SDK exporter (encode, POST)", f"{data['send_spans_per_s']:,.0f} spans/s",
         f"SDK exporter alone, same spans: {data['sdk_export_spans_per_s']:,.0f} spans/s; "
         f"bare intake: {data['intake_spans_per_s']:,.0f} spans/s"),
        ("OTLP from the SQLite store (lineage per trace, mapping, send)",
         f"{data['from_store_spans_per_s']:,.0f} spans/s",
         f"lineage load alone: {data['lineage_load_traces_per_s']:,.0f} traces/s"),
    ]
    if "openlineage_events" in data:
        rows += [
            ("OpenLineage: events_for + JSON", f"{data['openlineage_map_events_per_s']:,.0f} "
             "events/s", "-"),
            ("OpenLineage: + HTTP transport (a POST per event)",
             f"{data['openlineage_send_events_per_s']:,.0f} events/s "
             f"({data['openlineage_send_runs_per_s']:,.0f} runs/s)",
             f"bare intake: {data['openlineage_intake_events_per_s']:,.0f} events/s "
             f"({data['openlineage_intake_runs_per_s']:,.0f} runs/s)"),
        ]
    return [f"{data['traces']:,} traces, {data['spans']:,} spans "
            f"({data['otlp_bytes_per_span']:,.0f} protobuf bytes per span, "
            f"{data['batch_spans']} per request)", "",
            "| path | measured | ceiling (same run, same receiver) |", "| --- | --- | --- |",
            *(f"| {a} | {b} | {c} |" for a, b, c in rows)]


def critical(data: dict[str, Any]) -> list[str]:
    """The application thread's time in callbacks per invocation (benchmarks/_critical.py)."""
    lines = [f"{data['invocations']:,} invocations after {data['warmup']} warm-up; "
             "microseconds per invocation spent in the handler's callbacks, writer excluded", "",
             "| framework | handler | CPU p50 | CPU p99 | wall p50 | wall p99 "
             "| callbacks | whole invocation p50 |", "|" + " --- |" * 8]
    for framework in ("langchain", "llamaindex"):
        for config, entry in data.get(framework, {}).items():
            cpu, wall = entry["cpu"], entry["wall"]
            lines.append(f"| {framework} | {config} | {cpu['p50_us']:,.0f} | {cpu['p99_us']:,.0f} "
                         f"| {wall['p50_us']:,.0f} | {wall['p99_us']:,.0f} "
                         f"| {entry['callbacks_per_invocation']} "
                         f"| {entry['invocation']['p50_us']:,.0f} |")
    return lines


def stored_bytes(data: dict[str, Any]) -> list[str]:
    """Database growth per invocation (benchmarks/_bytes.py)."""
    lines = [f"{data['invocations']:,} invocations after {data['warmup']} warm-up", "",
             "| backend | framework | bytes per invocation | largest tables and indexes |",
             "| --- | --- | --- | --- |"]
    for backend in ("sqlite", "postgresql"):
        entry = data.get(backend, {})
        if "skipped" in entry:
            lines.append(f"| {backend} | skipped: {entry['skipped']} | | |")
            continue
        for framework, result in entry.items():
            top = sorted(result["per_table"].items(), key=lambda kv: -kv[1])[:4]
            lines.append(f"| {backend} | {framework} | {result['bytes_per_invocation']:,.0f} | "
                         + ", ".join(f"{name} {size:,.0f}" for name, size in top) + " |")
    return lines


def render(results: dict[str, Any]) -> str:
    out = [f"Command: `{results['command']}`, started {results['started_at']}", "",
           f"Machine: {results['machine']}; load average (1, 5, 15 min) at start "
           f"{results.get('load_average', {}).get('start')}, at end "
           f"{results.get('load_average', {}).get('end')}", "", f"Versions: {results['versions']}, "
           f"PostgreSQL server {results.get('postgresql_server')}", ""]
    for name, fn in (("overhead", overhead), ("critical", critical), ("bytes", stored_bytes),
                     ("offload", offload), ("instructions", instructions),
                     ("ingest", ingest), ("scale", scale), ("ui", ui), ("quality", quality),
                     ("memory", memory), ("startup", startup), ("export", export)):
        data = results["benchmarks"].get(name)
        if data:
            out += [f"### {name}", "", *fn(data), ""]
    out += ["### targets", "", *targets(results), ""]
    return "\n".join(out)


if __name__ == "__main__":
    default = Path(__file__).parent / "results" / "latest.json"
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else default
    print(render(json.loads(path.read_text(encoding="utf-8"))))
