"""Drop the GIN index on llm_calls.metadata (PostgreSQL).

It indexed every key and value of every LLM call's metadata, prompt messages
included, which doubled the cost of inserting an LLM call, and no ragtrail query
used it. ``runs.metadata`` (small, user-set) keeps its GIN index for ``@>`` queries.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_INDEX = "ix_llm_calls_metadata_gin"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index(_INDEX, table_name="llm_calls")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.create_index(_INDEX, "llm_calls", ["metadata"], postgresql_using="gin")
