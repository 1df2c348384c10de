"""Reading back what a store holds, straight from the tables (independent of the writer)."""

from __future__ import annotations

from collections import Counter

import sqlalchemy as sa


def run_id_counts(url: str, prefix: str = "") -> Counter[str]:
    """How many rows each run id has in ``runs`` (at most 1 if nothing is duplicated)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("select id from runs where id like :p"),
                                {"p": prefix + "%"})
            return Counter(row[0] for row in rows)
    finally:
        engine.dispose()


def sqlite_path(url: str) -> str:
    """The file of a ``sqlite:///`` URL."""
    return url.split(":///", 1)[1]
