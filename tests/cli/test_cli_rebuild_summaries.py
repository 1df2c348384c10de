"""ragtrail admin rebuild-summaries: usage_rollup and quality_rollup recomputed from the rows."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa
from click.testing import CliRunner
from quality_support import NOW, Window, store_windows

from ragtrail.cli import cli
from ragtrail.query import quality, usage
from ragtrail.store import open_store
from ragtrail.testing.internals import store_tables


def test_rebuild_summaries_repairs_both_rollups(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    store_windows(url, Window(NOW - timedelta(days=2), count=30, step=timedelta(hours=1),
                              error_share=0.2),
                  Window(NOW, count=20, model="gpt-4o", seed=2))
    with open_store(url) as store:
        engine = store.engine
        kept_quality = quality(engine, group_by=("app_name", "model"))
        kept_usage = usage(engine, group_by=("day", "model"))
        with engine.begin() as conn:  # damaged by hand: every bucket gone
            conn.execute(sa.delete(store_tables.quality_rollup))
            conn.execute(sa.delete(store_tables.usage_rollup))
        assert quality(engine, group_by=("app_name", "model")) != kept_quality
        assert usage(engine, group_by=("day", "model")) != kept_usage

        result = CliRunner().invoke(cli, ["admin", "rebuild-summaries", "--db", url, "--json"])
        assert result.exit_code == 0, result.output
        counts = json.loads(result.output)
        with engine.connect() as conn:
            for table in ("usage_rollup", "quality_rollup"):
                stored = conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
                assert counts[table] == stored > 0
        assert quality(engine, group_by=("app_name", "model")) == kept_quality
        assert quality(engine, group_by=("app_name", "model"), summaries=False) == kept_quality
        assert usage(engine, group_by=("day", "model")) == kept_usage

        text = CliRunner().invoke(cli, ["admin", "rebuild-summaries", "--db", url])
        assert text.exit_code == 0 and "quality_rollup: " in text.output
