"""Stored rows of the example and benchmark pipelines, with volatile values normalised.

A refactor of the capture path must not change what is stored. This module runs the
pipelines the project ships (``examples/``: the LangChain and LlamaIndex RAG demos, the
cross-framework trace, the lineage and cost examples; ``benchmarks/``: the LCEL chain and
the LlamaIndex query engine under invoke, stream and eight concurrent requests) into one
database and dumps every table as sorted JSON, with what differs from run to run
replaced by something stable:

- run ids, trace ids and parent ids become the run's *name path* (root name > ... > name),
  so the tree's shape is kept while LangChain's random UUIDs and LlamaIndex's span ids go;
- times and durations become ``"<time>"``; the path column becomes its depth;
- the environment (host, process id, versions) keeps only its keys;
- any UUID left inside a value becomes ``"<uuid>"``.

Nothing is normalised for the backend, because nothing needs to be: dumped with only the
run-to-run values above replaced (checked on 2026-12-07, issue 25), SQLite and PostgreSQL
give the same Python types and values for every column and JSON leaf (``Decimal`` with the
same scale for numeric columns, the same ``float`` for double and JSON numbers, JSON
decoded by SQLAlchemy on both). ``_plain`` turns ``Decimal`` and ``bytes`` into strings
only so that the dump is JSON; a difference between the backends would show as a failure
of the golden test on one of them.

``tests/store/test_rows_unchanged.py`` compares the dump, on SQLite and on PostgreSQL, with
``tests/golden/rows.json``, generated from main before the issue-25 refactor (the two
backends' dumps were identical, so there is one golden file) and changed since only on
purpose (issue 27: the ``streamed`` key and the columns revision 0009 promoted out of the
LLM call's metadata). Regenerate it only when a
change of stored rows is intended, and say so in the commit::

    .venv/bin/python tests/rows_dump.py sqlite:////tmp/rows.db > tests/golden/rows.json
"""

from __future__ import annotations

import json
import re
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
TIME_COLUMNS = {"started_at", "ended_at", "duration_ms", "created_at", "stored_at",
                "time_to_first_token_ms"}
RUN_ID_COLUMNS = {"id", "trace_id", "parent_id", "run_id"}
# Written by the examples with "now" in them (cost_report's week window) or host facts.
KEYS_ONLY_COLUMNS = {"environment"}
# Keys inside JSON values that hold clock readings or speeds (LLM call metadata).
TIME_KEY_RE = re.compile(r"(_ms|_at|_s|timestamp|per_second)$")


def run_pipelines(url: str) -> None:
    """Run every example and benchmark pipeline into ``url`` (quietly)."""
    import contextlib
    import io

    for path in (ROOT / "examples", ROOT / "tests", ROOT):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))
    import cost_report
    import cross_framework
    import lineage_queries
    import rag_demo

    from benchmarks import _lc, _li
    from ragtrail import Trail
    from ragtrail_langchain import RagtrailCallbackHandler
    from ragtrail_llamaindex import instrument, uninstrument

    with contextlib.redirect_stdout(io.StringIO()):
        rag_demo.main(url)
        cross_framework.main(url)
        lineage_queries.main(url)
        cost_report.main(url)
        with Trail(url, app_name="bench-langchain") as trail:
            handler = RagtrailCallbackHandler(trail)
            for workload in _lc.workloads().values():
                workload([handler])
        with Trail(url, app_name="bench-llamaindex") as trail:
            instrument(trail)
            try:
                for workload in _li.workloads().values():
                    workload([])
            finally:
                uninstrument(trail)


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value.normalize()) if value == value.to_integral() else str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, str):
        return UUID_RE.sub("<uuid>", value)
    if isinstance(value, dict):
        return {UUID_RE.sub("<uuid>", str(k)):
                "<time>" if TIME_KEY_RE.search(str(k)) and v is not None else _plain(v)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float):
        return round(value, 9)
    if value is None or isinstance(value, (bool, int)):
        return value
    return UUID_RE.sub("<uuid>", str(value))


def _json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def dump(url: str) -> dict[str, list[Any]]:
    """Every table of the store at ``url``, normalised and sorted."""
    import sqlalchemy as sa

    from ragtrail.testing.internals import run_columns, store_tables

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            # Payloads stored apart (revision 0011) read back in their runs, as captured.
            runs = [dict(r._mapping)
                    for r in conn.execute(sa.select(*run_columns(store_tables.runs)))]
            names = {r["id"]: r["name"] for r in runs}
            parents = {r["id"]: r["parent_id"] for r in runs}

            def name_path(rid: Any) -> Any:
                if rid is None:
                    return None
                parts, seen = [], set()
                while rid is not None and rid not in seen:
                    seen.add(rid)
                    parts.append(names.get(rid, "<outside>"))
                    rid = parents.get(rid)
                return " > ".join(reversed(parts))

            out: dict[str, list[Any]] = {}
            for table in store_tables.metadata.sorted_tables:
                if table is store_tables.usage_rollup or table is store_tables.quality_rollup:
                    continue  # derived (sums of stored rows), not stored rows of a run
                if table is store_tables.payloads:
                    continue  # how runs' payloads are stored: read back in the runs
                rows = runs if table is store_tables.runs else [
                    dict(r._mapping) for r in conn.execute(sa.select(table))]
                normalised = []
                for row in rows:
                    item: dict[str, Any] = {}
                    for key, value in row.items():
                        if key in TIME_COLUMNS:
                            item[key] = None if value is None else "<time>"
                        elif key in RUN_ID_COLUMNS:
                            item[key] = name_path(value)
                        elif key == "path":
                            item[key] = str(value).count(".") + 1
                        elif key in KEYS_ONLY_COLUMNS:
                            value = _json(value)
                            item[key] = sorted(value) if isinstance(value, dict) else value
                        else:
                            item[key] = _plain(_json(value))
                    normalised.append(item)
                out[table.name] = sorted(normalised, key=lambda r: json.dumps(r, sort_keys=True))
            return out
    finally:
        engine.dispose()


def generate(url: str) -> dict[str, list[Any]]:
    """Run the pipelines into ``url`` (an empty database) and dump it."""
    run_pipelines(url)
    return dump(url)


if __name__ == "__main__":
    print(json.dumps(generate(sys.argv[1]), indent=1, sort_keys=True))
