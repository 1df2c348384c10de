"""Named hooks into ragtrail's internals, for ragtrail's own tests only.

No stability promise: names come and go with the code they expose, in any release.
Applications test through :mod:`ragtrail.testing` and the public API instead.

Tests import a private module or name only from here (``tests/core/
test_private_imports.py`` checks it), so each reach into the internals is named, grouped
and explained in one place. A hook is either a name re-exported as it is, or a private
module itself (``store_tables``, ``query_usage``, ...) when a test monkeypatches the
module's globals or reads several of them.

Hooks load on first use: some live in modules of optional extras (the web view,
OpenTelemetry, OpenLineage), which a test of the core should neither need nor import.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

#: Each hook: ``"module"`` (the module itself) or ``"module:attribute"``.
_HOOKS: dict[str, str] = {
    # Logging throttles, tested apart from the code that logs through them.
    "RateLimitedLog": "ragtrail._log:RateLimitedLog",
    "SafeLogger": "ragtrail._log:SafeLogger",
    # The fork-safe lock registry, whose lock a test holds while an owner is collected.
    "forksafe": "ragtrail._forksafe",
    # Payload conversion, made to fail to show a failure costs the field, not the run.
    "SafeJson": "ragtrail.capture._safe_json:SafeJson",
    # The lineage path segment of a run, checked against strftime for any start time.
    "lineage_segment": "ragtrail.capture.recorder:_segment",
    # The records' fast constructor, compared with pydantic's model_construct (both paths).
    "schemas_base": "ragtrail.schemas._base",
    # How a root's question and answer are read, table-tested on every input shape.
    "answer_of": "ragtrail.query._common:answer_of",
    "question_of": "ragtrail.query._common:question_of",
    # Query statements and plans, to check indexes are used and each plan gives one answer.
    "query_documents": "ragtrail.query._documents",
    "links_statement": "ragtrail.query._documents:links_statement",
    "roots_statement": "ragtrail.query._traces:roots_statement",
    "query_usage": "ragtrail.query._usage",
    "evaluations_by_trace": "ragtrail.query._browse:evaluations_by_trace",
    # The store's tables, migrations and rollups: reading, altering and downgrading a
    # database behind the store's back, as an older ragtrail or another tool would.
    "store_tables": "ragtrail.store._tables",
    "store_migrate": "ragtrail.store._migrate",
    "store_rollups": "ragtrail.store._rollups",
    "store_summaries": "ragtrail.store._summaries",
    "encode_batch": "ragtrail.store._rows:encode_batch",
    "run_columns": "ragtrail.store._payloads:run_columns",
    "payload_key": "ragtrail.store._payloads:payload_key",
    "INLINE_MAX": "ragtrail.store._payloads:INLINE_MAX",
    "trace_page": "ragtrail.query._browse:trace_page",
    "store_retention": "ragtrail.store._retention",
    # SQLite's WAL switch under a lock, and its checkpointer, faulted directly.
    "store_url": "ragtrail.store._url",
    "AUTOCHECKPOINT_PAGES": "ragtrail.store._checkpoint:AUTOCHECKPOINT_PAGES",
    "WalCheckpointer": "ragtrail.store._checkpoint:WalCheckpointer",
    # How a write error is classified (transient, permanent), table-tested per driver error.
    "classify_write_error": "ragtrail.store._errors:classify_write_error",
    # Read-ahead encoding and PostgreSQL's bulk path, with their switches patched.
    "PreparedRows": "ragtrail.store._pipeline:PreparedRows",
    "store_pipeline": "ragtrail.store._pipeline",
    "store_bulk": "ragtrail.store._bulk",
    "sql_store": "ragtrail.store._store",
    # The writer's loop, spool and spiller, faulted from inside to reach each recovery path.
    "Spiller": "ragtrail.writer._spiller:Spiller",
    "Spool": "ragtrail.writer._spool:Spool",
    "WriterLoop": "ragtrail.writer._loop:WriterLoop",
    # CLI helpers and constants whose values the CLI tests compare with the library's.
    "records_of": "ragtrail.cli._io:records_of",
    "SOURCES": "ragtrail.cli._evals:SOURCES",
    "DRIFT_EXIT": "ragtrail.cli._quality:DRIFT_EXIT",
    "parse_window": "ragtrail.cli._quality:parse_window",
    # The web view's read audit and token check, tested without a server.
    "audited_reads": "ragtrail.web._audit:audited_reads",
    "web_security": "ragtrail.web._security",
    # The exporters' senders and ids, driven against a local receiver.
    "events_for": "ragtrail.export._openlineage:events_for",
    "run_uuid": "ragtrail.export._openlineage:run_uuid",
    "send_lineages": "ragtrail.export._otlp:send_lineages",
    "span_exporter": "ragtrail.export._otlp:span_exporter",
}

__all__ = sorted(_HOOKS)


def __getattr__(name: str) -> Any:
    target = _HOOKS.get(name)
    if target is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module_name, _, attribute = target.partition(":")
    module = import_module(module_name)
    return getattr(module, attribute) if attribute else module


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOOKS})
