"""Per-day summaries for ``ragtrail quality`` and ``ragtrail drift``: ``quality_rollup``,
created and filled from the stored rows.

From this revision on the store keeps it in the transactions that store or delete the
rows it summarises (``ragtrail.store._summaries``); ``quality()`` and ``drift()`` read
whole days from it.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ragtrail.store._summaries import rebuild
from ragtrail.store._types import KEY

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "quality_rollup",
        sa.Column("bucket", KEY, nullable=False),
        sa.Column("summary", sa.String, nullable=False),
        sa.Column("day", sa.String, nullable=False),
        sa.Column("tenant", KEY),
        sa.Column("dims", KEY, nullable=False),
        sa.Column("n", sa.BigInteger, nullable=False),
        *(sa.Column(name, KEY) for name in ("lo", "hi", "lo2", "hi2")),
        *(sa.Column(f"x{i}", sa.Float, nullable=False) for i in range(6)),
        sa.PrimaryKeyConstraint("bucket", name="pk_quality_rollup"),
    )
    op.create_index("ix_quality_rollup_summary_day", "quality_rollup", ["summary", "day"])
    rebuild(op.get_bind())


def downgrade() -> None:
    op.drop_index("ix_quality_rollup_summary_day", table_name="quality_rollup")
    op.drop_table("quality_rollup")
