"""Alembic environment for ragtrail's migrations.

ragtrail runs Alembic only programmatically (see ``ragtrail.store._migrate``), on a
connection it already opened and locked, passed in ``config.attributes``.
"""

from __future__ import annotations

from alembic import context

from ragtrail.store._migrate import VERSION_TABLE, autogenerate_filter
from ragtrail.store._tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "ragtrail migrations run through ragtrail.store.upgrade_database(url) "
        "or `ragtrail db upgrade URL`, not the alembic command line"
    )

context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    compare_type=True,
    include_object=autogenerate_filter(connection.dialect.name),
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
