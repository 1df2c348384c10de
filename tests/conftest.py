"""Shared fixtures: database URLs for SQLite and the real PostgreSQL server.

Tests are grouped by layer, one directory each (``core``: capture, schemas, pricing,
redaction; ``store``; ``writer``; ``reliability``; ``providers``; ``langchain``;
``llamaindex``; ``evals``; ``quality``; ``cli``; ``web``; ``export``; ``governance``;
``e2e``: the examples, the README and the benchmarks' smoke runs; ``interop``). Every
test carries its layer as a marker, so ``pytest -m langchain`` runs one layer.

PostgreSQL tests read the server URL from ``RAGTRAIL_TEST_POSTGRES_URL`` (set by
``.ci/run``); without it, or when the server does not answer, they skip with the
reason. Each test gets its own PostgreSQL schema, so tests never see each other's
rows and can run while other test sessions use the same server.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from layers import LAYERS

PG_ENV = "RAGTRAIL_TEST_POSTGRES_URL"


def _pg_base_url() -> str:
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(f"PostgreSQL tests need {PG_ENV} (set by .ci/run); not set here")
    return url


def _connect_or_skip(url: str) -> None:
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
        engine.dispose()
    except Exception as exc:
        pytest.skip(f"PostgreSQL at {PG_ENV} is not reachable: {type(exc).__name__}: {exc}")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """URL of a fresh, empty schema on the test PostgreSQL server, dropped afterwards."""
    import sqlalchemy as sa

    base = _pg_base_url()
    _connect_or_skip(base)
    schema = f"rt_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(base)
    with engine.begin() as conn:
        conn.execute(sa.text(f'create schema "{schema}"'))
    sep = "&" if "?" in base else "?"
    yield f"{base}{sep}options={quote(f'-csearch_path={schema}')}"
    with engine.begin() as conn:
        conn.execute(sa.text(f'drop schema if exists "{schema}" cascade'))
    engine.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """URL of a new SQLite file in the test's temporary directory."""
    return f"sqlite:///{tmp_path / 'ragtrail.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """Each test using this runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("pg_url"))


_TESTS = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test with its layer (the directory under tests/ it lives in)."""
    for item in items:
        try:
            layer = Path(str(item.fspath)).resolve().relative_to(_TESTS).parts[0]
        except ValueError:
            continue
        if layer in LAYERS:
            item.add_marker(getattr(pytest.mark, layer))
