"""Quality and drift reports without JSON, from indexes: LLM metadata values in columns.

``llm_calls`` gains copies of the metadata values ``ragtrail quality`` and
``ragtrail drift`` count and average (``schemas.flat.LLM_PROMOTED``): the model version,
request id and finish reason, the time to first token, whether the call streamed, the
temperature and max tokens sent. Existing rows are filled from their metadata JSON.

Indexes that hold every column the reports' per-run, per-root and per-retrieval
aggregates read, in the order they group (see ``store._tables``); the document links'
trace index gains the stage.

Revision ID: 0009
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ragtrail.store._types import KEY

revision = "0009"
down_revision = "0007"
branch_labels = None
depends_on = None

#: column, its type, its path in the metadata JSON, the SQL type PostgreSQL casts to.
_COLUMNS = (
    ("model_version", KEY, ("response_metadata", "model_version"), None),
    ("request_id", KEY, ("response_metadata", "request_id"), None),
    ("finish_reason", sa.String(), ("response_metadata", "finish_reason"), None),
    ("time_to_first_token_ms", sa.Float(),
     ("performance_metrics", "time_to_first_token_ms"), "double precision"),
    ("streamed", sa.Boolean(), ("streamed",), "boolean"),
    ("temperature", sa.Float(), ("request_parameters", "temperature"), "double precision"),
    ("max_tokens", sa.BigInteger(), ("request_parameters", "max_tokens"), "bigint"),
)


def _extract(dialect: str, path: tuple[str, ...], cast: str | None) -> str:
    if dialect == "sqlite":
        return f"json_extract(metadata, '$.{'.'.join(path)}')"
    text = f"(metadata #>> '{{{','.join(path)}}}')"
    return f"{text}::{cast}" if cast else text


_ROOTS = sa.text("parent_id IS NULL")
#: Covering indexes of the reports (as in ``store._tables`` at this revision).
LLM_REPORT_COLUMNS = (
    "started_at", "run_id", "trace_id", "provider", "provider_model", "prompt_template_hash",
    "model_version", "total_tokens", "total_cost", "price_status", "temperature",
    "max_tokens", "time_to_first_token_ms", "streamed", "finish_reason", "request_id",
)
LINK_REPORT_COLUMNS = ("stage", "run_id", "document_id", "trace_id", "content_hash", "score")


_NEW_INDEXES = ("ix_runs_started_at", "ix_runs_quality", "ix_runs_call_context",
                "ix_runs_kind_started_at", "ix_runs_roots_quality", "ix_llm_calls_reports",
                "ix_document_links_reports", "ix_document_links_trace_id_stage")


def upgrade() -> None:
    for name, type_, _, _ in _COLUMNS:
        op.add_column("llm_calls", sa.Column(name, type_))
    dialect = op.get_bind().dialect.name
    sets = ", ".join(f"{name} = {_extract(dialect, path, cast)}"
                     for name, _, path, cast in _COLUMNS)
    op.execute(f"UPDATE llm_calls SET {sets}")
    op.create_index("ix_runs_quality", "runs", ["schema_version", "truncated", "redacted",
                                                "status", "app_name", "started_at", "id"])
    op.create_index("ix_llm_calls_reports", "llm_calls", list(LLM_REPORT_COLUMNS))
    op.create_index("ix_document_links_reports", "document_links", list(LINK_REPORT_COLUMNS))
    op.create_index("ix_runs_call_context", "runs",
                    ["id", "started_at", "app_name", "request_type"])
    op.create_index("ix_runs_kind_started_at", "runs",
                    ["kind", "started_at", "app_name", "id", "trace_id"])
    op.create_index("ix_runs_roots_quality", "runs",
                    ["app_name", "started_at", "id", "request_type", "status", "duration_ms",
                     "app_version", "user_hash", "session_id", "parent_id"],
                    postgresql_where=_ROOTS, sqlite_where=_ROOTS)
    op.create_index("ix_document_links_trace_id_stage", "document_links", ["trace_id", "stage"])
    op.drop_index("ix_document_links_trace_id", table_name="document_links")
    op.drop_index("ix_runs_started_at", table_name="runs")
    op.create_index("ix_runs_started_at", "runs", ["started_at", "app_name", "id"])
    analyzed = dialect == "sqlite" and op.get_bind().exec_driver_sql(
        "SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'").first() is not None
    if analyzed:
        # A database analyzed before: its planner would judge the new indexes without
        # statistics (and pick worse plans than it had). PostgreSQL's autovacuum does this.
        for index in _NEW_INDEXES:
            op.execute(f"ANALYZE {index}")


def downgrade() -> None:
    op.drop_index("ix_runs_started_at", table_name="runs")
    op.create_index("ix_runs_started_at", "runs", ["started_at"])
    op.create_index("ix_document_links_trace_id", "document_links", ["trace_id"])
    op.drop_index("ix_document_links_trace_id_stage", table_name="document_links")
    op.drop_index("ix_document_links_reports", table_name="document_links")
    op.drop_index("ix_llm_calls_reports", table_name="llm_calls")
    for index in ("ix_runs_roots_quality", "ix_runs_kind_started_at", "ix_runs_call_context",
                  "ix_runs_quality"):
        op.drop_index(index, table_name="runs")
    with op.batch_alter_table("llm_calls") as batch:
        for name, _, _, _ in reversed(_COLUMNS):
            batch.drop_column(name)
