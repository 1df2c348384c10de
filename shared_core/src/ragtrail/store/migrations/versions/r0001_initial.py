"""Initial schema: runs, llm_calls, documents, document_links.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ragtrail.store._types import JSON_VALUE, Money, UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _json(name: str, *, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, JSON_VALUE, nullable=nullable)


def _gin(name: str, table: str, column: str) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.create_index(name, table, [column], postgresql_using="gin")


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.String, nullable=False),
        sa.Column("trace_id", sa.String, nullable=False),
        sa.Column("parent_id", sa.String),
        sa.Column("path", sa.String, nullable=False),
        sa.Column("kind", sa.String, nullable=False),
        sa.Column("name", sa.String, nullable=False),
        sa.Column("framework", sa.String, nullable=False),
        sa.Column("started_at", UtcDateTime, nullable=False),
        sa.Column("ended_at", UtcDateTime),
        sa.Column("duration_ms", sa.Float),
        sa.Column("status", sa.String, nullable=False),
        _json("error"),
        _json("inputs"),
        _json("outputs"),
        _json("tags", nullable=False),
        _json("metadata", nullable=False),
        sa.Column("truncated", sa.Boolean, nullable=False),
        sa.Column("redacted", sa.Boolean, nullable=False),
        sa.Column("retries", sa.Integer, nullable=False),
        _json("events", nullable=False),
        sa.Column("app_name", sa.String),
        sa.Column("app_version", sa.String),
        sa.Column("user_hash", sa.String),
        sa.Column("session_id", sa.String),
        sa.Column("request_type", sa.String),
        _json("environment"),
        sa.Column("schema_version", sa.String, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
    )
    op.create_index(
        "ix_runs_parent_id",
        "runs",
        ["parent_id"],
        postgresql_where=sa.text("parent_id IS NOT NULL"),
        sqlite_where=sa.text("parent_id IS NOT NULL"),
    )
    for columns in (["trace_id"], ["path"], ["started_at"],
                    ["app_name", "started_at"], ["user_hash"], ["session_id"], ["status"]):
        op.create_index(f"ix_runs_{'_'.join(columns)}", "runs", columns)
    op.create_index(
        "ix_runs_roots_started_at",
        "runs",
        ["started_at", "id"],
        postgresql_where=sa.text("parent_id IS NULL"),
        sqlite_where=sa.text("parent_id IS NULL"),
    )
    _gin("ix_runs_metadata_gin", "runs", "metadata")

    op.create_table(
        "llm_calls",
        sa.Column("run_id", sa.String, nullable=False),
        sa.Column("trace_id", sa.String, nullable=False),
        sa.Column("provider", sa.String),
        sa.Column("provider_model", sa.String),
        sa.Column("started_at", UtcDateTime, nullable=False),
        *(sa.Column(f"{name}_tokens", sa.BigInteger)
          for name in ("input", "output", "total", "cache_read", "cache_creation", "reasoning")),
        *(sa.Column(f"{name}_cost", Money)
          for name in ("input", "output", "cache_read", "cache_write", "reasoning", "total")),
        sa.Column("currency", sa.String),
        sa.Column("price_status", sa.String),
        sa.Column("prompt_template_hash", sa.String),
        _json("metadata", nullable=False),
        sa.PrimaryKeyConstraint("run_id", name="pk_llm_calls"),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name="fk_llm_calls_run_id_runs", ondelete="CASCADE"
        ),
    )
    for column in ("trace_id", "provider_model", "provider", "started_at",
                   "prompt_template_hash"):
        op.create_index(f"ix_llm_calls_{column}", "llm_calls", [column])
    _gin("ix_llm_calls_metadata_gin", "llm_calls", "metadata")

    op.create_table(
        "documents",
        sa.Column("content_hash", sa.String, nullable=False),
        sa.Column("document_id", sa.String, nullable=False),
        sa.Column("content", sa.Text),
        _json("metadata", nullable=False),
        sa.PrimaryKeyConstraint("content_hash", name="pk_documents"),
    )
    op.create_index("ix_documents_document_id", "documents", ["document_id"])

    op.create_table(
        "document_links",
        sa.Column("run_id", sa.String, nullable=False),
        sa.Column("content_hash", sa.String, nullable=False),
        sa.Column("stage", sa.String, nullable=False),
        sa.Column("trace_id", sa.String, nullable=False),
        sa.Column("document_id", sa.String, nullable=False),
        sa.Column("rank", sa.Integer, nullable=False),
        sa.Column("score", sa.Float),
        sa.Column("input_rank", sa.Integer),
        sa.PrimaryKeyConstraint("run_id", "content_hash", "stage", name="pk_document_links"),
    )
    for column in ("content_hash", "document_id", "trace_id"):
        op.create_index(f"ix_document_links_{column}", "document_links", [column])


def downgrade() -> None:
    for table in ("document_links", "documents", "llm_calls", "runs"):
        op.drop_table(table)
