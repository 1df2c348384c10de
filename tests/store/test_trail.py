"""The Trail facade: construction errors, context manager, manual runs, stats, close."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragtrail import ConfigError, NotFoundError, StoreUnavailableError, Trail
from ragtrail.capture import DocumentInput
from ragtrail.redaction import RedactionConfig
from ragtrail.schemas import DocStage, RunKind, RunStatus


@pytest.mark.parametrize(
    ("url", "error", "words"),
    [
        ("nosuchdb://x", ConfigError, "nosuchdb"),
        ("postgresql+psycopg://postgres@127.0.0.1:1/test", StoreUnavailableError, "127.0.0.1"),
    ],
)
def test_bad_urls_give_one_clear_line(url: str, error: type[Exception], words: str) -> None:
    with pytest.raises(error) as caught:
        Trail(url)
    message = str(caught.value)
    assert words in message and "\n" not in message and "Traceback" not in message


@pytest.mark.parametrize("option", ["capture", "redaction", "writer"])
def test_a_config_of_the_wrong_type_is_refused_before_anything_opens(
        option: str, tmp_path: Path) -> None:
    path = tmp_path / "never.db"
    with pytest.raises(ConfigError, match=f"Trail\\({option}=...\\) takes a"):
        Trail(f"sqlite:///{path}", **{option: {"max_list_items": 10}})  # type: ignore[arg-type]
    assert not path.exists()


def test_default_url_is_env_then_local_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RAGTRAIL_URL", raising=False)
    with Trail() as trail:
        assert trail.url.endswith("ragtrail.db")
    assert (tmp_path / "ragtrail.db").exists()
    monkeypatch.setenv("RAGTRAIL_URL", f"sqlite:///{tmp_path / 'env.db'}")
    with Trail() as trail:
        assert "env.db" in trail.url


def test_manual_runs_are_recorded_with_errors(sqlite_url: str) -> None:
    with Trail(sqlite_url, app_name="manual") as trail:
        with trail.run("pipeline", inputs={"question": "q?"}, user_id="u-1") as outer:
            with trail.run("lookup", kind=RunKind.RETRIEVER, parent_id=outer.id) as inner:
                trail.recorder.add_documents(inner.id, [DocumentInput("doc text", "d1", score=1.0)],
                                             stage=DocStage.RETRIEVED)
                inner.set_outputs(["doc text"])
            outer.event("checkpoint", {"step": 1})
            outer.set_outputs({"answer": "a!"})
        with pytest.raises(KeyError), trail.run("broken"):
            raise KeyError("missing")
        assert trail.flush(10)
        lineage = trail.lineage(outer.id)
        assert [r.name for r in lineage.runs] == ["pipeline", "lookup"]
        assert (lineage.question, lineage.answer) == ("q?", "a!")
        assert lineage.runs[0].events[0]["name"] == "checkpoint"
        assert lineage.documents[0].document_id == "d1"
        broken = trail.traces(status="error")
        assert [t.name for t in broken] == ["broken"]
        assert trail.lineage(broken[0].trace_id).runs[0].error.type == "KeyError"
        assert [t.trace_id for t in trail.traces(user_id="u-1")] == [outer.id]
        assert trail.traces(user_id="u-2") == []


def test_user_ids_are_matched_through_the_configured_key(sqlite_url: str) -> None:
    with Trail(sqlite_url, redaction=RedactionConfig(user_hash_secret="k1")) as trail:
        with trail.run("r", user_id="alice"):
            pass
        trail.flush(10)
        stored = trail.lineage(trail.traces()[0].trace_id).runs[0].user_hash
        assert stored and "alice" not in stored
        assert len(trail.traces(user_id="alice")) == 1
    with Trail(sqlite_url, redaction=RedactionConfig(user_hash_secret="k2")) as other:
        assert other.traces(user_id="alice") == []  # another key cannot find her


def test_close_stores_open_runs_as_abandoned_and_refuses_later(sqlite_url: str) -> None:
    trail = Trail(sqlite_url)
    trail.recorder.start_run("left-open", kind="chain", name="never ends")
    assert trail.close(5.0) is True
    assert trail.close() is True  # idempotent
    trail.recorder.start_run("late", kind="chain", name="after close")
    trail.recorder.end_run("late")  # refused by the closed writer, counted, not raised
    assert trail.stats()["capture"]["refused"] == 1
    with Trail(sqlite_url, background=False) as reader:
        run = reader.lineage("left-open").runs[0]
        assert run.status is RunStatus.ABANDONED
        with pytest.raises(NotFoundError, match="late"):
            reader.lineage("late")


def test_stats_balance_after_flush(sqlite_url: str) -> None:
    with Trail(sqlite_url) as trail:
        for i in range(20):
            with trail.run(f"r{i}"):
                pass
        assert trail.flush(10)
        stats = trail.stats()
        assert stats["capture"]["offered"] == 20
        writer = stats["writer"]
        assert writer["offered"] == writer["stored"] == 20 and writer["dropped_total"] == 0


def test_synchronous_mode_writes_at_flush(sqlite_url: str) -> None:
    with Trail(sqlite_url, background=False) as trail:
        with trail.run("sync"):
            pass
        assert trail.stats()["writer"]["queued"] == 1
        assert trail.flush()
        assert trail.stats()["writer"]["stored"] == 1


def test_sqlite_durability_setting(sqlite_url: str) -> None:
    import sqlalchemy as sa

    for setting, expected in (("NORMAL", 1), ("full", 2)):
        with Trail(sqlite_url, sqlite_synchronous=setting) as trail, \
                trail.store.engine.connect() as conn:
            assert conn.execute(sa.text("PRAGMA synchronous")).scalar() == expected
    with pytest.raises(ConfigError, match="sqlite_synchronous"):
        Trail(sqlite_url, sqlite_synchronous="sometimes")


def test_sqlite_cache_setting(sqlite_url: str) -> None:
    import sqlalchemy as sa

    with Trail(sqlite_url) as trail, trail.store.engine.connect() as conn:
        assert conn.execute(sa.text("PRAGMA cache_size")).scalar() == -8 * 1024  # KiB
    with Trail(sqlite_url, sqlite_cache_mib=64) as trail, trail.store.engine.connect() as conn:
        assert conn.execute(sa.text("PRAGMA cache_size")).scalar() == -64 * 1024
    with pytest.raises(ConfigError, match="sqlite_cache_mib"):
        Trail(sqlite_url, sqlite_cache_mib=0)


def test_close_reports_what_it_could_not_write(sqlite_url: str, tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    from ragtrail.writer import WriterConfig

    trail = Trail(sqlite_url, writer=WriterConfig(
        spool_dir=tmp_path / "spool", retry_max_attempts=1, retry_initial_backoff_s=0.01,
        retry_max_backoff_s=0.05))

    def down(records: object) -> None:
        from ragtrail.sink import TransientStoreError

        raise TransientStoreError("database is down")

    trail.store.write_batch = down  # type: ignore[method-assign]
    with trail.run("never stored"):
        pass
    with caplog.at_level("WARNING", logger="ragtrail.writer"):
        assert trail.close(1.0) is False
    message = " ".join(r.getMessage() for r in caplog.records)
    assert "closed with records not stored" in message and "database is down" in message
