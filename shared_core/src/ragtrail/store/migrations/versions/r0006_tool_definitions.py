"""Tool definitions stored once.

An agent offers the same tools (name, description, JSON schema) on every LLM call; each
distinct definition is now one row of ``tool_definitions``, keyed by the sha256 of its
JSON, and a stored call's ``tools`` keep ``{"name", "definition_hash"}`` references.

Revision ID: 0006
Revises: 0005 (developed beside 0005, evaluations; chained after it at the merge)
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ragtrail.store._types import JSON_VALUE, KEY

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tool_definitions",
        sa.Column("definition_hash", KEY, nullable=False),
        sa.Column("name", KEY, nullable=False),
        sa.Column("definition", JSON_VALUE, nullable=False),
        sa.PrimaryKeyConstraint("definition_hash", name="pk_tool_definitions"),
    )


def downgrade() -> None:
    op.drop_table("tool_definitions")
