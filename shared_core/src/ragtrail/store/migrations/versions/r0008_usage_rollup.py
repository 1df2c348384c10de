"""Pre-aggregated usage: ``usage_rollup``, created and filled from the stored LLM calls.

From this revision on the store keeps it in the transactions that store or delete LLM
calls (``ragtrail.store._rollups``); ``usage()`` answers from it when it can.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ragtrail.store._rollups import rebuild
from ragtrail.store._types import KEY, Money

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_TOKENS = ("input", "output", "total", "cache_read", "cache_creation", "reasoning")


def upgrade() -> None:
    op.create_table(
        "usage_rollup",
        sa.Column("bucket", KEY, nullable=False),
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
        sa.Column("total_cost", Money, nullable=False),
        *(sa.Column(f"{name}_tokens", sa.BigInteger, nullable=False) for name in _TOKENS),
        sa.PrimaryKeyConstraint("bucket", name="pk_usage_rollup"),
    )
    rebuild(op.get_bind())


def downgrade() -> None:
    op.drop_table("usage_rollup")
