"""Runs' payloads stored once (revision 0011): dedup, transparent reads, deletion, old rows.

On SQLite and PostgreSQL: a payload at least ``INLINE_MAX`` characters long is one row of
``payloads`` however many runs hold it, the runs keep its hash; every read path gives
the value back as captured; purge and erasure delete the payloads no remaining run
references; rows stored inline (before 0011, or small) read as they are.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command

from ragtrail.governance.erasure import erase
from ragtrail.governance.retention import purge
from ragtrail.query import lineage, traces
from ragtrail.schemas import CapturedRun, Run, RunKind
from ragtrail.store import open_store
from ragtrail.testing.internals import INLINE_MAX, payload_key, store_migrate, trace_page

UTC = timezone.utc
NOW = datetime.now(UTC)
DOCS = [{"page_content": f"passage {i} about write-ahead logging " * 4, "metadata": {"i": i}}
        for i in range(3)]
QUESTION = "how does write ahead logging let readers continue"


def record(run_id: str, *, trace_id: str | None = None, parent_id: str | None = None,
           started: datetime = NOW, kind: RunKind = RunKind.CHAIN, name: str = "chain",
           **fields: Any) -> CapturedRun:
    return CapturedRun(run=Run(id=run_id, trace_id=trace_id or run_id, parent_id=parent_id,
                               path=f"p.{run_id}", kind=kind, name=name, started_at=started,
                               **fields))


def _trace(trace: str, *, started: datetime = NOW, session: str | None = None,
           tenant: str | None = None,
           answer: str = "The context answers the question " * 4) -> list[Any]:
    """A root and two children: the retriever's output is the reranker's input, the
    question (short: inline) is everyone's input."""
    root = record(trace, trace_id=trace, started=started, kind=RunKind.CHAIN,
                  name="chain", inputs={"question": QUESTION}, outputs={"answer": answer},
                  session_id=session, tenant=tenant)
    retriever = record(f"{trace}-ret", trace_id=trace, parent_id=trace,
                       started=started, kind=RunKind.RETRIEVER, name="retriever",
                       inputs={"query": QUESTION}, outputs=DOCS, session_id=session, tenant=tenant)
    rerank = record(f"{trace}-rerank", trace_id=trace, parent_id=trace,
                    started=started, kind=RunKind.RERANKER, name="rerank",
                    inputs={"documents": DOCS}, outputs=DOCS[:2], session_id=session, tenant=tenant)
    return [root, retriever, rerank]


def _stored(engine: sa.Engine) -> tuple[dict[str, tuple[Any, ...]], set[str]]:
    """{run id: (inputs inline?, inputs_ref, outputs inline?, outputs_ref)}, payload keys."""
    with engine.connect() as conn:
        runs = {r.id: (r.inputs is not None, r.inputs_ref, r.outputs is not None, r.outputs_ref)
                for r in conn.execute(sa.text(
                    "select id, inputs, inputs_ref, outputs, outputs_ref from runs"))}
        keys = set(conn.execute(sa.text("select hash from payloads")).scalars())
    return runs, keys


def _values(engine: sa.Engine, trace: str) -> dict[str, tuple[Any, Any]]:
    return {run.id: (run.inputs, run.outputs) for run in lineage(engine, trace).runs}


def test_a_payload_is_stored_once_and_read_back_as_captured(db_url: str) -> None:
    records = _trace("a") + _trace("b", answer="Another answer, long enough to be apart. " * 3)
    with open_store(db_url) as store:
        store.write_batch(records[:4])
        store.write_batch(records[4:])
        runs, keys = _stored(store.engine)
        # One row per distinct payload: the documents (3 runs, 2 traces), the reranked two
        # (2 traces), the wrapped documents (2), each answer; the question stays inline.
        assert len(keys) == 5
        assert runs["a-ret"][:3] == (True, None, False)
        assert runs["a-ret"][3] == runs["b-ret"][3] is not None
        assert runs["a"][:2] == (True, None)  # {"question": ...}: under INLINE_MAX
        assert runs["a-rerank"][0] is False and runs["a-rerank"][1] is not None
        assert runs["a"][3] != runs["b"][3]
        for trace, rows in (("a", records[:3]), ("b", records[3:])):
            assert _values(store.engine, trace) == {
                r.run.id: (r.run.inputs, r.run.outputs) for r in rows}
        [b_item, a_item] = traces(store.engine)
        assert a_item.answer is not None and a_item.answer.startswith("The context answers")
        assert b_item.answer is not None and b_item.answer.startswith("Another answer")
        # Text search reads referenced payloads too.
        assert [t.trace_id for t in trace_page(store.engine, text="ANOTHER ANSWER").traces] == ["b"]
        assert {t.trace_id for t in trace_page(store.engine, text=QUESTION).traces} == {"a", "b"}


def test_the_key_is_the_hash_of_the_stored_json_text(db_url: str) -> None:
    with open_store(db_url) as store:
        store.write_batch(_trace("a"))
        with store.engine.connect() as conn:
            ref = conn.execute(sa.text(
                "select outputs_ref from runs where id = 'a-ret'")).scalar_one()
    from ragtrail.schemas.flat import RUN_FIELDS, flatten

    text = flatten(_trace("a")[1]).run[RUN_FIELDS.index("outputs")]
    assert len(text) >= INLINE_MAX and ref == payload_key(text)


def test_a_batch_written_twice_adds_nothing(db_url: str) -> None:
    with open_store(db_url) as store:
        store.write_batch(_trace("a"))
        before = _stored(store.engine)
        store.write_batch(_trace("a"))
        assert _stored(store.engine) == before


def test_purge_deletes_the_payloads_only_purged_traces_referenced(db_url: str) -> None:
    old = NOW - timedelta(days=40)
    with open_store(db_url) as store:
        store.write_batch(_trace("old", started=old, answer="only the old trace says this " * 4))
        store.write_batch(_trace("new"))
        _runs, keys = _stored(store.engine)
        result = purge(store.engine, older_than="30d")
        assert result.traces == 1
        # The old answer went; the documents, which the new trace holds too, stayed.
        assert result.counts["payloads"] == 1
        _runs, left = _stored(store.engine)
        assert left < keys and len(keys - left) == 1
        assert _values(store.engine, "new") == {
            r.run.id: (r.run.inputs, r.run.outputs) for r in _trace("new")}
        purge(store.engine, older_than="0d")
        assert _stored(store.engine) == ({}, set())


def test_purge_of_one_tenant_keeps_what_another_tenant_references(db_url: str) -> None:
    old = NOW - timedelta(days=40)
    with open_store(db_url) as store:
        store.write_batch(_trace("a", started=old, tenant="acme", answer="acme's own " * 12))
        store.write_batch(_trace("b", started=old, tenant="globex"))
        result = purge(store.engine, older_than="30d", tenant="acme")
        assert (result.traces, result.counts["payloads"]) == (1, 1)
        assert _values(store.engine, "b") == {
            r.run.id: (r.run.inputs, r.run.outputs) for r in _trace("b", tenant="globex")}


def test_erasure_erases_the_subjects_payloads(db_url: str) -> None:
    secret = "my account number is 12345678, please help " * 3
    with open_store(db_url) as store:
        store.write_batch(_trace("mine", session="s-1", answer=secret))
        store.write_batch(_trace("theirs", session="s-2"))
        receipt = erase(store.engine, session_id="s-1")
        assert receipt.traces == 1 and receipt.counts["payloads"] == 1
        with store.engine.connect() as conn:
            bodies = [str(b) for b in conn.execute(sa.text(
                "select cast(body as text) from payloads")).scalars()]
        assert bodies and not any("12345678" in body for body in bodies)
        assert _values(store.engine, "theirs") == {
            r.run.id: (r.run.inputs, r.run.outputs) for r in _trace("theirs", session="s-2")}


def test_rows_stored_inline_before_revision_0011_still_read(db_url: str) -> None:
    """Written at head, taken down to 0010 (payloads back inline, as 0010 stored them),
    upgraded again without rewriting: the same values on every read path."""
    records = _trace("a")
    with open_store(db_url) as store:
        store.write_batch(records)
        before = _values(store.engine, "a")
        listed = [t.model_dump() for t in traces(store.engine)]
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            command.downgrade(store_migrate._config(conn), "0010")
            conn.commit()
            assert "payloads" not in sa.inspect(conn).get_table_names()
            inline = dict(conn.execute(sa.text("select id, outputs from runs")).all())
            assert all(value is not None for value in inline.values())
    finally:
        engine.dispose()
    with open_store(db_url, auto_upgrade=True) as store:
        runs, keys = _stored(store.engine)
        assert keys == set() and all(ref is None for _i, ref, _o, _r in runs.values())
        assert _values(store.engine, "a") == before
        assert [t.model_dump() for t in traces(store.engine)] == listed
        # New rows of the same trace share nothing with the old inline ones: still read.
        store.write_batch(_trace("b"))
        assert _values(store.engine, "b") == {
            r.run.id: (r.run.inputs, r.run.outputs) for r in _trace("b")}


@pytest.mark.parametrize("size", [INLINE_MAX - 12, INLINE_MAX + 12])
def test_small_payloads_stay_inline(db_url: str, size: int) -> None:
    # {"answer":"..."} is 13 characters around the text.
    run = record("r", kind=RunKind.CHAIN, outputs={"answer": "x" * (size - 13)})
    with open_store(db_url) as store:
        store.write_batch([run])
        runs, keys = _stored(store.engine)
        assert (runs["r"][3] is None) == (size < INLINE_MAX)
        assert len(keys) == (size >= INLINE_MAX)
        assert lineage(store.engine, "r").runs[0].outputs == run.run.outputs
