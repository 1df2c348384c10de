"""Byte-order keys on PostgreSQL; context indexes hold only runs that have a value.

- PostgreSQL: the id, hash, path and name columns ragtrail's indexes are built on get
  ``COLLATE "C"``. The database's collation (en_US.UTF-8, C.UTF-8, ...) made every
  comparison an index insert does go through strcoll, and could order run paths
  unlike SQLite. Byte order is what these values mean. (SQLite compares them that
  way already.) Only the indexes are rebuilt; rows are not rewritten.
- Both: the indexes on ``runs.app_name``, ``user_hash``, ``session_id`` and on
  ``llm_calls.prompt_template_hash`` become partial (``IS NOT NULL``): apps that set
  no app name, user or session, and calls without a template, no longer pay for them.
  Queries filter these columns on a value, which implies NOT NULL, so they still use
  them.

Upgrading a PostgreSQL database of 1,000,000 runs (the benchmark's) took 16 s here;
the tables are locked meanwhile, as for any ALTER TABLE.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_KEYS = {
    "runs": ("id", "trace_id", "parent_id", "path", "status", "app_name", "user_hash",
             "session_id"),
    "llm_calls": ("run_id", "trace_id", "provider", "provider_model",
                  "prompt_template_hash"),
    "documents": ("content_hash", "document_id"),
    "document_links": ("run_id", "content_hash", "stage", "trace_id", "document_id"),
}
_PARTIAL = (
    ("runs", ("app_name", "started_at")),
    ("runs", ("user_hash",)),
    ("runs", ("session_id",)),
    ("llm_calls", ("prompt_template_hash",)),
)


def _collate(collation: str | None) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    # One ALTER TABLE per table, so each index on these columns is rebuilt once.
    # Without COLLATE a column gets the database's collation back.
    clause = f' COLLATE "{collation}"' if collation else ""
    for table, columns in _KEYS.items():
        changes = ", ".join(f'ALTER COLUMN "{column}" TYPE VARCHAR{clause}'
                            for column in columns)
        op.execute(f'ALTER TABLE "{table}" {changes}')


def _indexes(partial: bool) -> None:
    for table, columns in _PARTIAL:
        name = f"ix_{table}_{'_'.join(columns)}"
        op.drop_index(name, table_name=table)
        where = sa.text(f"{columns[0]} IS NOT NULL") if partial else None
        op.create_index(name, table, list(columns), postgresql_where=where,
                        sqlite_where=where)


def upgrade() -> None:
    _collate("C")
    _indexes(partial=True)


def downgrade() -> None:
    _indexes(partial=False)
    _collate(None)
