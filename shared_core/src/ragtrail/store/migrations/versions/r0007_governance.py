"""Governance: the erasure log, the read audit and a tenant on every run.

``erasure_log`` keeps one receipt per ``ragtrail erase`` (counts, time, the keyed hash
of the user or session, never the raw id); ``read_audit`` is the append-only record of
who read which trace through the web view or its JSON API; ``runs.tenant`` keeps tenants
apart (row-level security on PostgreSQL, see ``ragtrail db roles``).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ragtrail.store._types import JSON_VALUE, KEY, UtcDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "erasure_log",
        sa.Column("id", KEY, nullable=False),
        sa.Column("erased_at", UtcDateTime, nullable=False),
        sa.Column("subject", sa.String, nullable=False),
        sa.Column("subject_hash", KEY, nullable=False),
        sa.Column("traces", sa.Integer, nullable=False),
        sa.Column("counts", JSON_VALUE, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_erasure_log"),
    )
    op.create_table(
        "read_audit",
        sa.Column("id", KEY, nullable=False),
        sa.Column("read_at", UtcDateTime, nullable=False),
        sa.Column("reader", KEY, nullable=False),
        sa.Column("view", sa.String, nullable=False),
        sa.Column("trace_id", KEY),
        sa.PrimaryKeyConstraint("id", name="pk_read_audit"),
    )
    op.create_index("ix_read_audit_read_at", "read_audit", ["read_at"])
    op.add_column("runs", sa.Column("tenant", KEY))
    op.create_index("ix_runs_tenant_started_at", "runs", ["tenant", "started_at"],
                    postgresql_where=sa.text("tenant IS NOT NULL"),
                    sqlite_where=sa.text("tenant IS NOT NULL"))


def downgrade() -> None:
    op.drop_index("ix_runs_tenant_started_at", table_name="runs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("tenant")
    op.drop_index("ix_read_audit_read_at", table_name="read_audit")
    op.drop_table("read_audit")
    op.drop_table("erasure_log")
