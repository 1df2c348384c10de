"""Evaluations linked to traces, and the catalog of evaluation vendors.

- ``vendors``: the names evaluations use for the framework that produced them, seeded
  with DeepEval, Ragas, MLflow, Deepchecks, Arize Phoenix, LlamaIndex and custom.
- ``evaluations``: one row per evaluation of a trace (or of one run or document of
  it), with the judge's LLM metadata (JSONB with a GIN index on PostgreSQL) and its
  provider, total tokens and cost in indexed columns of their own.

Only new tables: existing rows are not touched.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ragtrail.store._types import JSON_VALUE, KEY, Money, UtcDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_VENDORS = ("DeepEval", "Ragas", "MLflow", "Deepchecks", "Arize Phoenix", "LlamaIndex",
            "custom")
_PARTIAL = (
    ("ix_evaluations_judge_trace_id", ("judge_trace_id",)),
    ("ix_evaluations_judge_provider_judge_total_cost", ("judge_provider", "judge_total_cost")),
    ("ix_evaluations_judge_total_tokens", ("judge_total_tokens",)),
)


def upgrade() -> None:
    vendors = op.create_table(
        "vendors",
        sa.Column("name", KEY, nullable=False),
        sa.Column("builtin", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_vendors"),
    )
    op.bulk_insert(vendors, [{"name": name, "builtin": True} for name in _VENDORS])
    op.create_table(
        "evaluations",
        sa.Column("id", KEY, nullable=False),
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
        sa.PrimaryKeyConstraint("id", name="pk_evaluations"),
    )
    op.create_index("ix_evaluations_trace_id_created_at", "evaluations",
                    ["trace_id", "created_at"])
    op.create_index("ix_evaluations_run_id", "evaluations", ["run_id"])
    op.create_index("ix_evaluations_created_at", "evaluations", ["created_at"])
    op.create_index("ix_evaluations_vendor_name", "evaluations", ["vendor_name"])
    for name, columns in _PARTIAL:
        where = sa.text(f"{columns[0]} IS NOT NULL")
        op.create_index(name, "evaluations", list(columns), postgresql_where=where,
                        sqlite_where=where)
    if op.get_bind().dialect.name == "postgresql":
        op.create_index("ix_evaluations_judge_gin", "evaluations", ["judge"],
                        postgresql_using="gin")


def downgrade() -> None:
    op.drop_table("evaluations")  # its indexes go with it
    op.drop_table("vendors")
