"""The tables ragtrail stores into (SQLAlchemy Core).

Runs arrive child-before-parent and in any order across batches, so nothing points
from ``runs.parent_id`` or a document link to another row with a foreign key; only
an LLM call, which always travels with its own run, references ``runs``.

A change here needs a new Alembic revision in ``migrations/versions``
(``tests/store/test_migrations.py`` fails while the two disagree).
"""

from __future__ import annotations

import sqlalchemy as sa

from ._types import JSON_VALUE, KEY, Money, UtcDateTime

__all__ = [
    "BUILTIN_VENDORS",
    "POSTGRES_ONLY_INDEXES",
    "document_links",
    "documents",
    "erasure_log",
    "evaluations",
    "llm_calls",
    "metadata",
    "payloads",
    "quality_rollup",
    "read_audit",
    "runs",
    "tool_definitions",
    "usage_rollup",
    "vendors",
]

#: Explicit constraint names, so migrations can refer to them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

#: Columns of the covering indexes the quality and drift reports read (revision 0009).
LLM_REPORT_COLUMNS = (
    "started_at", "run_id", "trace_id", "provider", "provider_model", "prompt_template_hash",
    "model_version", "total_tokens", "total_cost", "price_status", "temperature",
    "max_tokens", "time_to_first_token_ms", "streamed", "finish_reason", "request_id",
)
LINK_REPORT_COLUMNS = ("stage", "run_id", "document_id", "trace_id", "content_hash", "score")

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", KEY, primary_key=True),
    sa.Column("trace_id", KEY, nullable=False),
    sa.Column("parent_id", KEY),
    sa.Column("path", KEY, nullable=False),
    sa.Column("kind", sa.String, nullable=False),
    sa.Column("name", sa.String, nullable=False),
    sa.Column("framework", sa.String, nullable=False),
    sa.Column("started_at", UtcDateTime, nullable=False),
    sa.Column("ended_at", UtcDateTime),
    sa.Column("duration_ms", sa.Float),
    sa.Column("status", KEY, nullable=False),
    sa.Column("error", JSON_VALUE),
    sa.Column("inputs", JSON_VALUE),
    sa.Column("outputs", JSON_VALUE),
    sa.Column("tags", JSON_VALUE, nullable=False),
    sa.Column("metadata", JSON_VALUE, nullable=False),
    sa.Column("truncated", sa.Boolean, nullable=False),
    sa.Column("redacted", sa.Boolean, nullable=False),
    sa.Column("retries", sa.Integer, nullable=False),
    sa.Column("events", JSON_VALUE, nullable=False),
    sa.Column("app_name", KEY),
    sa.Column("app_version", sa.String),
    sa.Column("user_hash", KEY),
    sa.Column("session_id", KEY),
    sa.Column("request_type", sa.String),
    sa.Column("environment", JSON_VALUE),
    sa.Column("schema_version", sa.String, nullable=False),
    sa.Column("tenant", KEY),
    # A payload stored once in ``payloads`` (revision 0011): its content hash, with the
    # inline column NULL (``store._payloads``; older rows keep their payloads inline).
    sa.Column("inputs_ref", KEY),
    sa.Column("outputs_ref", KEY),
    sa.Index(None, "trace_id"),
    # Children only: then "parent_id IS NULL" can be served by the roots index alone
    # (SQLite otherwise picks this one and sorts every root to find the newest).
    sa.Index(
        None,
        "parent_id",
        postgresql_where=sa.text("parent_id IS NOT NULL"),
        sqlite_where=sa.text("parent_id IS NOT NULL"),
    ),
    # With application and id (revision 0009): a window's runs joined to their links or
    # evaluations, per application, without reading the runs' rows. (Not (started_at, id):
    # that order would rival the roots index for "recent traces".)
    sa.Index("ix_runs_started_at", "started_at", "app_name", "id"),
    # Context columns are empty in apps that set no app name, user or session: their
    # indexes hold only the runs that have one (a filter on a value implies NOT NULL).
    *(sa.Index(None, *columns, postgresql_where=sa.text(f"{columns[0]} IS NOT NULL"),
               sqlite_where=sa.text(f"{columns[0]} IS NOT NULL"))
      for columns in (("app_name", "started_at"), ("user_hash",), ("session_id",))),
    sa.Index(None, "status"),
    # "Recent traces" reads roots newest first (ties by id): a partial index holding
    # only roots, scanned backwards, answers it without a sort on both backends.
    sa.Index(
        "ix_runs_roots_started_at",
        "started_at",
        "id",
        postgresql_where=sa.text("parent_id IS NULL"),
        sqlite_where=sa.text("parent_id IS NULL"),
    ),
    # Quality and drift (revision 0009). Every column their per-run figures test, grouped
    # as they group: one pass over this index, no table row read.
    # (Not led by app_name: a query grouping by application would scan it for its order.)
    sa.Index("ix_runs_quality", "schema_version", "truncated", "redacted", "status",
             "app_name", "started_at", "id"),
    # A run's window and context by id: an LLM call's or a document link's run, joined
    # without reading the run's row.
    sa.Index("ix_runs_call_context", "id", "started_at", "app_name", "request_type"),
    # Runs of one kind in a window (retrievers, tools), with what the reports read of them.
    sa.Index("ix_runs_kind_started_at", "kind", "started_at", "app_name", "id", "trace_id"),
    # Roots per application with their context, status and latency (traces' figures).
    sa.Index(
        "ix_runs_roots_quality",
        "app_name", "started_at", "id", "request_type", "status", "duration_ms",
        "app_version", "user_hash", "session_id", "parent_id",
        postgresql_where=sa.text("parent_id IS NULL"),
        sqlite_where=sa.text("parent_id IS NULL"),
    ),
    # The roots of judges' traces (request_type "evaluation", revision 0005): usage and
    # trace lists leave them out with one lookup here, not a join of every call to its run.
    sa.Index(
        "ix_runs_evaluation_roots",
        "id",
        postgresql_where=sa.text("parent_id IS NULL AND request_type = 'evaluation'"),
        sqlite_where=sa.text("parent_id IS NULL AND request_type = 'evaluation'"),
    ),
)
#: Payloads still referenced by a run (purge and erasure keep those; a tenant's reader sees
#: a payload through a run referencing it): only the runs holding a reference.
for _ref in ("inputs_ref", "outputs_ref"):
    sa.Index(f"ix_runs_{_ref}", runs.c[_ref], postgresql_where=sa.text(f"{_ref} IS NOT NULL"),
             sqlite_where=sa.text(f"{_ref} IS NOT NULL"))

#: GIN indexes over JSONB: PostgreSQL only. (llm_calls.metadata had one until revision
#: 0002: it indexed every prompt message and no query used it.)
#: Runs of one tenant, by time (``purge --tenant``; row-level security filters on it).
sa.Index("ix_runs_tenant_started_at", runs.c.tenant, runs.c.started_at,
         postgresql_where=sa.text("tenant IS NOT NULL"),
         sqlite_where=sa.text("tenant IS NOT NULL"))

POSTGRES_ONLY_INDEXES = frozenset({"ix_runs_metadata_gin", "ix_evaluations_judge_gin"})

sa.Index("ix_runs_metadata_gin", runs.c.metadata, postgresql_using="gin").ddl_if(
    dialect="postgresql"
)

llm_calls = sa.Table(
    "llm_calls",
    metadata,
    sa.Column(
        "run_id", KEY, sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("trace_id", KEY, nullable=False),
    sa.Column("provider", KEY),
    # The provider's model name; falls back to the requested model when unknown.
    sa.Column("provider_model", KEY),
    sa.Column("started_at", UtcDateTime, nullable=False),
    sa.Column("input_tokens", sa.BigInteger),
    sa.Column("output_tokens", sa.BigInteger),
    # As reported, else input + output when both are known.
    sa.Column("total_tokens", sa.BigInteger),
    sa.Column("cache_read_tokens", sa.BigInteger),
    sa.Column("cache_creation_tokens", sa.BigInteger),
    sa.Column("reasoning_tokens", sa.BigInteger),
    sa.Column("input_cost", Money),
    sa.Column("output_cost", Money),
    sa.Column("cache_read_cost", Money),
    sa.Column("cache_write_cost", Money),
    sa.Column("reasoning_cost", Money),
    # NULL = unpriced: never summed as zero.
    sa.Column("total_cost", Money),
    sa.Column("currency", sa.String),
    sa.Column("price_status", sa.String),
    sa.Column("prompt_template_hash", KEY),
    sa.Column("metadata", JSON_VALUE, nullable=False),
    # Copies of metadata values the quality and drift reports aggregate (revision 0009,
    # schemas.flat.LLM_PROMOTED): read from columns, not parsed out of every call's JSON.
    sa.Column("model_version", KEY),
    sa.Column("request_id", KEY),
    sa.Column("finish_reason", sa.String),
    sa.Column("time_to_first_token_ms", sa.Float),
    sa.Column("streamed", sa.Boolean),
    sa.Column("temperature", sa.Float),
    sa.Column("max_tokens", sa.BigInteger),
    sa.Index(None, "trace_id"),
    sa.Index(None, "provider_model"),
    sa.Index(None, "provider"),
    sa.Index(None, "started_at"),
    sa.Index(None, "prompt_template_hash",
             postgresql_where=sa.text("prompt_template_hash IS NOT NULL"),
             sqlite_where=sa.text("prompt_template_hash IS NOT NULL")),
    # Every column the quality and drift reports read of a call (revision 0009): they
    # scan this, never the rows with their metadata JSON.
    sa.Index("ix_llm_calls_reports", *LLM_REPORT_COLUMNS),
)

documents = sa.Table(
    "documents",
    metadata,
    sa.Column("content_hash", KEY, primary_key=True),
    sa.Column("document_id", KEY, nullable=False),
    sa.Column("content", sa.Text),
    sa.Column("metadata", JSON_VALUE, nullable=False),
    sa.Index(None, "document_id"),
)

document_links = sa.Table(
    "document_links",
    metadata,
    sa.Column("run_id", KEY, primary_key=True),
    sa.Column("content_hash", KEY, primary_key=True),
    sa.Column("stage", KEY, primary_key=True),
    sa.Column("trace_id", KEY, nullable=False),
    sa.Column("document_id", KEY, nullable=False),
    sa.Column("rank", sa.Integer, nullable=False),
    sa.Column("score", sa.Float),
    sa.Column("input_rank", sa.Integer),
    sa.Index(None, "content_hash"),
    sa.Index(None, "document_id"),
    # With the stage (revision 0009): "has this trace an in_prompt document" is answered
    # by the index alone.
    sa.Index(None, "trace_id", "stage"),
    # The links of one stage (of one run) with what the reports read of them (0009).
    sa.Index("ix_document_links_reports", *LINK_REPORT_COLUMNS),
)

#: Runs' inputs and outputs above a size, each distinct one once, keyed by a hash of its
#: stored JSON text (revision 0011, ``store._payloads``): in a RAG trace a step's input
#: is mostly an earlier step's output, and the same documents come back across traces.
payloads = sa.Table(
    "payloads",
    metadata,
    sa.Column("hash", KEY, primary_key=True),
    sa.Column("body", JSON_VALUE, nullable=False),
    # SQLite: rows kept in the key's own B-tree, no second copy of every key in an index.
    sqlite_with_rowid=False,
)

#: Each distinct tool definition offered to a model, once (see schemas.flat.TOOL_FIELDS):
#: an agent offers the same tools on every call, and a stored call keeps references.
tool_definitions = sa.Table(
    "tool_definitions",
    metadata,
    sa.Column("definition_hash", KEY, primary_key=True),
    sa.Column("name", KEY, nullable=False),
    sa.Column("definition", JSON_VALUE, nullable=False),
)

#: Evaluation vendors (frameworks that produce evaluations), so ``vendor_name`` is spelt
#: one way; an unknown name is added when an evaluation first uses it.
vendors = sa.Table(
    "vendors",
    metadata,
    sa.Column("name", KEY, primary_key=True),
    sa.Column("builtin", sa.Boolean, nullable=False),
)

#: Evaluations of traces (or of one run or document of a trace). The judge's LLM
#: metadata summed over its own trace is kept whole in ``judge`` (JSONB with a GIN index
#: on PostgreSQL) and its provider, total tokens and total cost in columns of their own,
#: so "by judge provider", "judge tokens > N" and "judge cost by provider" are each one
#: indexed query on both backends. ``trace_id`` is NULL while the target is not stored
#: (the query layer resolves it from ``run_id`` once the run is).
evaluations = sa.Table(
    "evaluations",
    metadata,
    sa.Column("id", KEY, primary_key=True),
    sa.Column("trace_id", KEY),
    sa.Column("run_id", KEY, nullable=False),
    sa.Column("document_id", KEY),
    sa.Column("name", KEY, nullable=False),
    sa.Column("score", sa.Float),
    sa.Column("label", sa.String),
    sa.Column("passed", sa.Boolean),
    sa.Column("explanation", sa.Text),
    sa.Column("error", sa.Text),
    sa.Column("source", sa.String, nullable=False),
    sa.Column("vendor_name", KEY, nullable=False),
    sa.Column("vendor_version", sa.String),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("metadata", JSON_VALUE, nullable=False),
    sa.Column("judge_trace_id", KEY),
    sa.Column("judge", JSON_VALUE),
    sa.Column("judge_provider", KEY),
    sa.Column("judge_model", KEY),
    sa.Column("judge_total_tokens", sa.BigInteger),
    sa.Column("judge_total_cost", Money),
    sa.Index(None, "trace_id", "created_at"),
    sa.Index(None, "run_id"),
    sa.Index(None, "created_at"),
    sa.Index(None, "vendor_name"),
    sa.Index(None, "judge_trace_id", postgresql_where=sa.text("judge_trace_id IS NOT NULL"),
             sqlite_where=sa.text("judge_trace_id IS NOT NULL")),
    # The seed's three queries: by provider, by tokens, cost summed by provider (the
    # last reads only this index).
    sa.Index(None, "judge_provider", "judge_total_cost",
             postgresql_where=sa.text("judge_provider IS NOT NULL"),
             sqlite_where=sa.text("judge_provider IS NOT NULL")),
    sa.Index(None, "judge_total_tokens",
             postgresql_where=sa.text("judge_total_tokens IS NOT NULL"),
             sqlite_where=sa.text("judge_total_tokens IS NOT NULL")),
)
sa.Index("ix_evaluations_judge_gin", evaluations.c.judge, postgresql_using="gin").ddl_if(
    dialect="postgresql"
)

#: The seed's vendor names, plus LlamaIndex (its evaluators) and custom (your own code).
BUILTIN_VENDORS = ("DeepEval", "Ragas", "MLflow", "Deepchecks", "Arize Phoenix",
                   "LlamaIndex", "custom")


#: Usage summed per bucket (revision 0008), kept by the store in the transaction that
#: stores or deletes the LLM calls it sums (``_rollups``), so ``usage()`` need not scan
#: every call. A bucket is one value of each column before ``calls``: the UTC day of the
#: call, its model, provider and template, its app and request type as ``usage()`` reads
#: them (the call's run, else its trace's root), the request type of the call's own run,
#: whether its trace is a judge's, and its run's tenant. ``bucket`` is those values as
#: JSON (a key that NULLs cannot escape). Derived data: tests/rows_dump.py leaves it out.
usage_rollup = sa.Table(
    "usage_rollup",
    metadata,
    sa.Column("bucket", KEY, primary_key=True),
    sa.Column("day", sa.String, nullable=False),
    sa.Column("provider_model", KEY),
    sa.Column("provider", KEY),
    sa.Column("prompt_template_hash", KEY),
    sa.Column("app_name", KEY),
    sa.Column("request_type", sa.String),
    sa.Column("run_request_type", sa.String),
    sa.Column("judge", sa.Boolean, nullable=False),
    sa.Column("tenant", KEY),
    sa.Column("calls", sa.BigInteger, nullable=False),
    sa.Column("priced_calls", sa.BigInteger, nullable=False),
    # The sum of the priced calls' costs (0 when none is priced: read with priced_calls).
    sa.Column("total_cost", Money, nullable=False),
    *(sa.Column(f"{name}_tokens", sa.BigInteger, nullable=False)
      for name in ("input", "output", "total", "cache_read", "cache_creation", "reasoning")),
)

#: Per-day summaries of what ``quality()`` and ``drift()`` count (revision 0010), kept by
#: the store in the transactions that store or delete the rows they summarise
#: (``_summaries``). A bucket is one summary (``llm``, ``retrieval``, ``root``, ``run``),
#: one UTC day, one tenant (its runs'; row-level security filters on it) and one
#: combination of that summary's dimensions (``dims``: their values as JSON); ``bucket``
#: is the four as JSON. A bucket emptied by a recomputation may stay with ``n`` 0.
#: ``n`` rows; the least and greatest id (``lo``/``hi``) and second id (``lo2``/``hi2``,
#: e.g. a call's trace); sums ``x0``-``x5``.
#: Derived data: tests/rows_dump.py leaves it out.
quality_rollup = sa.Table(
    "quality_rollup",
    metadata,
    sa.Column("bucket", KEY, primary_key=True),
    sa.Column("summary", sa.String, nullable=False),
    sa.Column("day", sa.String, nullable=False),
    sa.Column("tenant", KEY),
    sa.Column("dims", KEY, nullable=False),
    sa.Column("n", sa.BigInteger, nullable=False),
    *(sa.Column(name, KEY) for name in ("lo", "hi", "lo2", "hi2")),
    *(sa.Column(f"x{i}", sa.Float, nullable=False) for i in range(6)),
    sa.Index("ix_quality_rollup_summary_day", "summary", "day"),
)

#: One receipt per erasure (``ragtrail erase``): when, whose (the keyed hash of the user
#: or session id, never the id itself), how many traces and rows per table went.
erasure_log = sa.Table(
    "erasure_log",
    metadata,
    sa.Column("id", KEY, primary_key=True),
    sa.Column("erased_at", UtcDateTime, nullable=False),
    sa.Column("subject", sa.String, nullable=False),
    sa.Column("subject_hash", KEY, nullable=False),
    sa.Column("traces", sa.Integer, nullable=False),
    sa.Column("counts", JSON_VALUE, nullable=False),
)

#: Who read which trace through the web view or its JSON API: append-only (the reader
#: role may only insert; see ``ragtrail db roles``).
read_audit = sa.Table(
    "read_audit",
    metadata,
    sa.Column("id", KEY, primary_key=True),
    sa.Column("read_at", UtcDateTime, nullable=False),
    sa.Column("reader", KEY, nullable=False),
    sa.Column("view", sa.String, nullable=False),
    sa.Column("trace_id", KEY),
    sa.Index(None, "read_at"),
)
