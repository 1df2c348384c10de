"""Runs' payloads stored once: content-addressed ``payloads``.

A run's inputs or outputs above a size (``store._payloads``) are stored once in
``payloads``, keyed by a hash of their stored JSON text, and the run keeps the hash in
``inputs_ref`` / ``outputs_ref`` with the inline column NULL. Rows stored before keep
their payloads inline and are read as they are: nothing is rewritten.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ragtrail.store._types import JSON_VALUE, KEY

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_REFS = ("inputs_ref", "outputs_ref")


def upgrade() -> None:
    op.create_table(
        "payloads",
        sa.Column("hash", KEY, nullable=False),
        sa.Column("body", JSON_VALUE, nullable=False),
        sa.PrimaryKeyConstraint("hash", name="pk_payloads"),
        sqlite_with_rowid=False,
    )
    for ref in _REFS:
        op.add_column("runs", sa.Column(ref, KEY))
    for ref in _REFS:
        where = sa.text(f"{ref} IS NOT NULL")
        op.create_index(f"ix_runs_{ref}", "runs", [ref], postgresql_where=where,
                        sqlite_where=where)


def downgrade() -> None:
    # Referenced payloads go back inline first, so no run loses its values.
    for ref, column in zip(_REFS, ("inputs", "outputs"), strict=True):
        op.execute(f"UPDATE runs SET {column} = (SELECT body FROM payloads "
                   f"WHERE payloads.hash = runs.{ref}) WHERE {ref} IS NOT NULL")
    for ref in _REFS:
        op.drop_index(f"ix_runs_{ref}", table_name="runs")
    with op.batch_alter_table("runs") as batch:
        for ref in _REFS:
            batch.drop_column(ref)
    op.drop_table("payloads")
