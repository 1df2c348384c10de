"""Drop the index on ``runs.path``.

PostgreSQL's btree refuses an index entry over 2,704 bytes. A run's path grows by
about 60 bytes per level (start time and id), so a run nested some 45 levels deep (an
agent's loop, recursive chains, LlamaIndex's refine over many chunks) could not be
stored at all: "index row size ... exceeds btree version 4 maximum 2704 for index
ix_runs_path". No ragtrail query used the index (lineage reads a trace through
``trace_id`` and orders in memory); a subtree query stays a range on ``path`` within a
trace, served by the ``trace_id`` index. Each run inserted also maintains one index
less.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_INDEX = "ix_runs_path"


def upgrade() -> None:
    op.drop_index(_INDEX, table_name="runs")


def downgrade() -> None:
    op.create_index(_INDEX, "runs", ["path"])
