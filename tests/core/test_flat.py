"""The flat form of a record: the rows the SQL store inserts and the spool keeps."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from pydantic_core import to_json

from ragtrail.schemas import CapturedRun, RunError, RunStatus
from ragtrail.schemas.flat import (
    FLAT_FORM,
    LLM_FIELDS,
    LLM_PROMOTED,
    RUN_FIELDS,
    FlatRecord,
    flatten,
    read_record,
)
from ragtrail.schemas.record import SerializedRecord
from reliability._factory import make_record


def odd_record() -> CapturedRun:
    record = make_record("flat", approx=False)
    record.run.inputs = {"q": "caf\u00e9 \u2603", "nul": "a\x00b", "n": [1, 2.5], "x": None}
    record.run.status = RunStatus.ERROR
    record.run.error = RunError(type="ValueError", message="boom")
    record.run.duration_ms = float("nan")
    record.documents[0].metadata = {"page": 3, "title": "\u00fcber"}
    record.links[0].score = None
    return record


def test_flat_rows_round_trip_through_a_spool_line() -> None:
    record = make_record("flat", approx=False)
    flat = flatten(record)
    back = read_record(flat.to_json())
    assert isinstance(back, FlatRecord)
    assert list(back.run) == list(flat.run) and list(back.llm or ()) == list(flat.llm or ())
    assert [list(row) for row in back.documents] == [list(row) for row in flat.documents]
    assert [list(row) for row in back.links] == [list(row) for row in flat.links]
    assert back.id == record.id
    assert back.to_record() == record  # nothing a record holds is lost


def test_flat_rows_hold_storable_values() -> None:
    record = odd_record()
    flat = flatten(record)
    run = dict(zip(RUN_FIELDS, flat.run, strict=True))
    assert run["kind"] == "llm" and run["status"] == "error"  # enum values
    assert run["started_at"] == record.run.started_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert run["duration_ms"] is None  # NaN: no backend stores it
    assert json.loads(run["error"]) == json.loads(record.run.error.model_dump_json())  # type: ignore[union-attr]
    assert json.loads(run["error"])["message"] == "boom"
    inputs = json.loads(run["inputs"])
    assert inputs == {"q": "caf\u00e9 \u2603", "nul": "a\ufffdb", "n": [1, 2.5], "x": None}
    llm = dict(zip(LLM_FIELDS, flat.llm or (), strict=True))
    assert llm["input_cost"] == "0.0001218" and llm["total_tokens"] == 908
    assert llm["provider_model"] == "gpt-4o-mini"
    assert json.loads(llm["metadata"]) == json.loads(record.llm.model_dump_json())  # type: ignore[union-attr]
    assert json.loads(flat.documents[0][3]) == {"page": 3, "title": "\u00fcber"}
    assert flat.links[0][6] is None


def test_lone_surrogates_and_nul_are_replaced_everywhere() -> None:
    record = make_record("flat", approx=False)
    record.run.name = "a\x00b\ud800c"
    record.run.inputs = {"k\ud800": ["x\ud800y"], "when": datetime(2025, 1, 2, tzinfo=timezone.utc),
                         "price": Decimal("1.50")}
    record.documents[0].content = "doc\ud800"
    flat = flatten(record)
    run = dict(zip(RUN_FIELDS, flat.run, strict=True))
    assert run["name"] == "a\ufffdb\ufffdc"
    assert json.loads(run["inputs"]) == {"k\ufffd": ["x\ufffdy"], "when": "2025-01-02T00:00:00Z",
                                         "price": "1.50"}
    assert flat.documents[0][2] == "doc\ufffd"
    flat.to_json().decode("utf-8")  # a spool line is valid UTF-8


def test_missing_derived_values_follow_the_llm_metadata() -> None:
    record = make_record("flat", approx=False)
    assert record.llm is not None and record.llm.token_usage is not None
    record.llm.provider_model = None
    record.llm.token_usage.total_tokens = None
    llm = dict(zip(LLM_FIELDS, flatten(record).llm or (), strict=True))
    assert llm["provider_model"] == "gpt-4o-mini"  # from the request parameters
    assert llm["total_tokens"] == 812 + 96


def test_naive_and_offset_times_are_stored_as_utc() -> None:
    record = make_record("flat", approx=False)
    local = timezone(timedelta(hours=2))
    record.run.started_at = datetime(2025, 1, 1, 12, 0, tzinfo=local)
    record.run.ended_at = datetime(2025, 1, 1, 10, 0, 1)  # naive: taken as UTC
    run = dict(zip(RUN_FIELDS, flatten(record).run, strict=True))
    assert run["started_at"] == "2025-01-01T10:00:00.000000Z"
    assert run["ended_at"] == "2025-01-01T10:00:01.000000Z"


@pytest.mark.parametrize("data", [
    [FLAT_FORM + 1, [], None, [], []],  # another version
    [FLAT_FORM, ["id"], None, [], []],  # a short run row
    [FLAT_FORM, ["id"] + [None] * (len(RUN_FIELDS) - 1), [1, 2], [], []],  # short LLM row
    [FLAT_FORM, ["id"] + [None] * (len(RUN_FIELDS) - 1), None, [["h"]], []],  # short document
    [FLAT_FORM, [None] * len(RUN_FIELDS), None, [], []],  # no run id
    {"form": FLAT_FORM},
])
def test_malformed_flat_data_is_refused(data: object) -> None:
    with pytest.raises(ValueError):
        FlatRecord.from_data(data)
    with pytest.raises(ValueError):
        read_record(to_json(data))


def test_a_plain_line_of_an_older_spool_is_still_read() -> None:
    record = make_record("flat", approx=False)
    back = read_record(record.model_dump_json())
    assert isinstance(back, SerializedRecord) and back.to_record() == record
    assert flatten(back.to_record()).run == flatten(record).run


def test_to_record_fills_what_a_store_keeps_as_null() -> None:
    record = make_record("flat", approx=False)
    flat = flatten(record)
    run = list(flat.run)
    for name in ("tags", "events", "metadata"):
        run[RUN_FIELDS.index(name)] = None
    rebuilt = FlatRecord(tuple(run), flat.llm, flat.documents, flat.links).to_record()
    assert rebuilt.run.tags == [] and rebuilt.run.events == [] and rebuilt.run.metadata == {}


def test_a_form_3_line_gets_its_promoted_llm_columns_from_the_metadata() -> None:
    """A spool written before the promoted LLM columns (form 3) is replayed into rows
    equal to a fresh record's."""
    record = make_record("flat", approx=False)
    assert record.llm is not None
    record.llm.streamed = True
    flat = flatten(record)
    old = len(LLM_FIELDS) - len(LLM_PROMOTED)
    assert flat.llm is not None and any(v is not None for v in flat.llm[old:])
    line = to_json([3, flat.run, list(flat.llm[:old]), flat.documents, flat.links, []])
    back = read_record(line)
    assert isinstance(back, FlatRecord) and back.llm is not None
    assert list(back.llm) == list(flat.llm)


def _odd_records() -> list[CapturedRun]:
    """Records whose texts need cleaning, whose times are not UTC, whose enums are plain
    strings or whose link texts hold NUL: each takes the slow road somewhere."""
    plain = make_record("plain", approx=False)
    nul = odd_record()
    nul.run.name, nul.run.app_name = "a\x00b", "caf\u00e9"
    surrogate = make_record("surrogate", approx=False)
    surrogate.run.path = "p\ud800"
    surrogate.links[0].document_id = "d\x00\ud800"
    surrogate.documents[0].content = "\u00fcber\x00"
    local = make_record("local", approx=False)
    local.run.started_at = datetime(2025, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    local.run.ended_at = datetime(2025, 1, 1, 10, 0, 1)  # naive: taken as UTC
    loose = make_record("loose", approx=False)
    loose.run.kind = "retriever"  # type: ignore[assignment]  # a plain string, not the enum
    loose.links[0].stage = "reranked"  # type: ignore[assignment]
    loose.run.tags, loose.run.events, loose.run.metadata = [], [], {}
    loose.run.retries = 0
    return [plain, nul, surrogate, local, loose]


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_a_batch_encodes_to_the_rows_of_the_flat_form(dialect: str) -> None:
    """The store encodes a CapturedRun in one pass (SQLite: its timestamps straight to
    SQLite's text): the rows are those of the flat form, as the spool replays them."""
    from ragtrail.testing.internals import encode_batch

    records = _odd_records()
    direct = encode_batch(records, dialect).tables()
    replayed = encode_batch([read_record(flatten(r).to_json()) for r in records],
                            dialect).tables()
    assert [(name, [list(row) for row in rows]) for name, rows in direct] == [
        (name, [list(row) for row in rows]) for name, rows in replayed]
    runs = dict(direct)["runs"]
    assert {row[RUN_FIELDS.index("name")] for row in runs} >= {"a\ufffdb"}
    assert any(row[RUN_FIELDS.index("app_name")] == "caf\u00e9" for row in runs)
    assert any(row[RUN_FIELDS.index("path")] == "p\ufffd" for row in runs)
    links = [list(row) for row in dict(direct)["document_links"]]
    assert any(row[4] == "d\ufffd\ufffd" for row in links)
    if dialect == "sqlite":
        assert "2025-01-01 10:00:00.000000" in {row[RUN_FIELDS.index("started_at")]
                                                for row in runs}
