"""No behaviour change: the example and benchmark pipelines store the same rows as before.

``tests/golden/rows.json`` was dumped from main before the issue-25 refactor (see
``tests/rows_dump.py`` for what is normalised and how to regenerate it). Any change to
what the capture path stores, on SQLite or PostgreSQL, shows here as a row diff. The
comparison runs once per backend (the ``db_url`` fixture: SQLite always, PostgreSQL when
``RAGTRAIL_TEST_POSTGRES_URL`` names a server that answers, else skipped with that reason)
against the same golden file: nothing in the dump is normalised per backend (see
``rows_dump``).

The whole refactor, checked apart from this test (2026-12-07): the pre-refactor code
(``409419d``, the last commit before the Recorder became the only run table) ran the same
pipelines into SQLite and PostgreSQL and its dumps were compared with this code's. Every
table is identical except ``llm_calls``, and there only by what issue 27 changed on
purpose: the ``streamed`` key in ``metadata`` (absent before; ``null``, or ``true`` for the
two streamed calls, after) and the columns revision 0009 added (``finish_reason``,
``max_tokens``, ``model_version``, ``request_id``, ``streamed``, ``temperature``,
``time_to_first_token_ms``). The pre-refactor databases upgraded to revision 0009 by this
code differ from this code's only by ``streamed`` (column and key), on both backends.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import rows_dump

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "rows.json"


def test_stored_rows_equal_the_golden_dump(db_url: str) -> None:
    # A fresh interpreter, as the golden dump was made: LlamaIndex's global settings and
    # dispatcher, which earlier tests of the session change, are part of what is stored.
    done = subprocess.run([sys.executable, rows_dump.__file__, db_url], capture_output=True,
                          text=True, check=True, timeout=900)
    expected = json.loads(GOLDEN.read_text())
    got = json.loads(done.stdout)
    assert {t: len(rows) for t, rows in got.items()} == {
        t: len(rows) for t, rows in expected.items()}
    for table, rows in expected.items():
        missing = [r for r in rows if r not in got[table]]
        extra = [r for r in got[table] if r not in rows]
        assert not missing and not extra, (table, missing[:2], extra[:2])


def test_the_dump_sees_a_changed_row(sqlite_url: str) -> None:
    """The comparison can fail: one token count changed in the store shows in the dump."""
    import sqlalchemy as sa

    from ragtrail.testing.internals import store_tables

    # The pipelines run in a fresh interpreter here too: run in this one, the examples
    # would leave their LlamaIndex handlers registered for the tests that follow.
    done = subprocess.run([sys.executable, rows_dump.__file__, sqlite_url],
                          capture_output=True, text=True, check=True, timeout=900)
    before = json.loads(done.stdout)
    engine = sa.create_engine(sqlite_url)
    with engine.begin() as conn:
        conn.execute(sa.update(store_tables.llm_calls).values(
            output_tokens=store_tables.llm_calls.c.output_tokens + 1))
    engine.dispose()
    after = json.loads(json.dumps(rows_dump.dump(sqlite_url), sort_keys=True))
    assert before["runs"] == after["runs"]
    assert before["llm_calls"] != after["llm_calls"]
