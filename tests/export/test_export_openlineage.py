"""OpenLineage export: one START and one COMPLETE / FAIL / ABORT RunEvent per stored trace,
sent with openlineage-python's HTTP transport to a receiver on 127.0.0.1 or appended to a
file, with the in-prompt documents' sources as inputs and the answers as the output."""

from __future__ import annotations

import json
import sys
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("openlineage.client", reason="the openlineage extra is not installed")

from click.testing import CliRunner
from openlineage.client.serde import Serde

from ragtrail import Trail
from ragtrail.cli import cli
from ragtrail.schemas import DocStage
from ragtrail.testing.internals import events_for, run_uuid

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))

import langchain_rag
import llamaindex_rag


class Collector:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.status = 200
        self.url = ""


@pytest.fixture
def collector() -> Iterator[Collector]:
    state = Collector()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            state.paths.append(self.path)
            if state.status == 200:
                state.events.append(json.loads(body))
            self.send_response(state.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[str]]:
    url = f"sqlite:///{tmp_path_factory.mktemp('ol') / 'demo.db'}"
    return url, [langchain_rag.main(url), llamaindex_rag.main(url)]


#: The RunEvent fields the OpenLineage 2-0-2 specification requires, checked by hand: no
#: package on the registry ships the specification's JSON schema (openlineage-python, wheels
#: and sdists from 0.30 to 1.54, ships only classes generated from it; the integration
#: packages ship their own facets' schemas, which refer to the specification by URL), and
#: it is not written out here. The client's attrs classes check the rest when an event is
#: built.
def _check_spec(event: dict[str, Any]) -> None:
    for key in ("eventTime", "producer", "schemaURL", "run", "job"):
        assert key in event, key
    assert event["schemaURL"].startswith("https://openlineage.io/spec/")
    assert event["eventType"] in ("START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER")
    uuid.UUID(event["run"]["runId"])
    assert event["job"]["namespace"] and event["job"]["name"]
    for dataset in event.get("inputs", []) + event.get("outputs", []):
        assert dataset["namespace"] and dataset["name"]
    for facets in [event["run"].get("facets", {}), event["job"].get("facets", {})] + [
            d.get("facets", {}) for d in event.get("inputs", []) + event.get("outputs", [])]:
        for facet in facets.values():
            assert facet["_producer"] and facet["_schemaURL"]


def test_one_start_and_one_complete_per_trace(demo, collector) -> None:
    url, ids = demo
    result = CliRunner().invoke(cli, ["export", *ids, "--db", url, "--openlineage",
                                      collector.url])
    assert result.exit_code == 0, result.output
    assert "emitted 4 OpenLineage events for 2 traces" in result.output
    assert set(collector.paths) == {"/api/v1/lineage"}
    with Trail(url, background=False) as trail:
        lineages = {i: trail.lineage(i) for i in ids}
    assert len(collector.events) == 4
    for event in collector.events:
        _check_spec(event)
    by_run: dict[str, list[dict[str, Any]]] = {}
    for event in collector.events:
        by_run.setdefault(event["run"]["runId"], []).append(event)
    for trace_id, lineage in lineages.items():
        start, end = by_run[run_uuid(trace_id)]
        assert (start["eventType"], end["eventType"]) == ("START", "COMPLETE")
        root = lineage.root
        assert start["job"] == end["job"]
        assert start["job"]["namespace"] == root.app_name and start["job"]["name"] == root.name
        facet = end["run"]["facets"]["ragtrail"]
        assert facet["traceId"] == trace_id
        assert facet["totalTokens"] == lineage.total_tokens
        assert facet["models"] == sorted({c.metadata.provider_model for c in lineage.llm_calls})
        assert facet["totalCost"] == pytest.approx(float(lineage.total_cost))
        # Inputs: the sources of the documents that were in the prompt, and only those.
        in_prompt = lineage.documents_at(DocStage.IN_PROMPT)
        sources = {use.metadata["source"] for use in in_prompt}
        assert {d["name"] for d in end["inputs"]} == sources
        not_in_prompt = {u.metadata.get("source") for u in lineage.documents} - sources
        assert not_in_prompt  # the demo retrieves more than it puts in the prompt
        assert not {d["name"] for d in end["inputs"]} & not_in_prompt
        used = [doc["contentHash"] for d in end["inputs"]
                for doc in d["facets"]["ragtrailDocuments"]["documents"]]
        assert sorted(used) == sorted(u.content_hash for u in in_prompt)
        assert end["outputs"] == [{"namespace": root.app_name, "name": "answers", "facets": {},
                                   "outputFacets": {}}]


def test_a_failed_trace_emits_fail_with_the_error(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'fail.db'}"
    with Trail(url, background=False, app_name="bot") as trail:
        with pytest.raises(KeyError), trail.run("answer") as run:
            raise KeyError("missing")
        trail.flush()
        lineage = trail.lineage(run.id)
    start, end = (json.loads(Serde.to_json(e)) for e in events_for(lineage))
    assert start["eventType"] == "START" and end["eventType"] == "FAIL"
    assert end["run"]["facets"]["errorMessage"]["message"].startswith("KeyError")
    assert end["inputs"] == []  # no document was in a prompt: no input is claimed
    _check_spec(end)


def test_documents_without_a_source_are_one_dataset_per_collection(tmp_path) -> None:
    from datetime import datetime, timezone

    from ragtrail.schemas import CapturedRun, Document, DocumentLink, Run, RunKind

    url = f"sqlite:///{tmp_path / 'col.db'}"
    now = datetime.now(timezone.utc)
    docs = [Document.from_text(t) for t in ("alpha text", "beta text")]
    root = Run(id="root", trace_id="root", path="a", name="qa", started_at=now, ended_at=now)
    retriever = Run(id="ret", trace_id="root", parent_id="root", path="a.b", name="kb-search",
                    kind=RunKind.RETRIEVER, started_at=now, ended_at=now)
    llm = Run(id="llm", trace_id="root", parent_id="root", path="a.c", name="chat",
              kind=RunKind.LLM, started_at=now, ended_at=now)

    def link(run: str, doc: Document, stage: DocStage, rank: int) -> DocumentLink:
        return DocumentLink(run_id=run, trace_id="root", content_hash=doc.content_hash,
                            document_id=doc.document_id, stage=stage, rank=rank)

    with Trail(url, background=False) as trail:
        trail.store.write_batch([
            CapturedRun(run=root),
            CapturedRun(run=retriever, documents=docs,
                        links=[link("ret", d, DocStage.RETRIEVED, i) for i, d in enumerate(docs)]),
            CapturedRun(run=llm, documents=docs[:1],
                        links=[link("llm", docs[0], DocStage.IN_PROMPT, 0)]),
        ])
        lineage = trail.lineage("root")
    _, end = (json.loads(Serde.to_json(e)) for e in events_for(lineage))
    assert [(d["namespace"], d["name"]) for d in end["inputs"]] == [
        ("ragtrail", "collection/kb-search")]


def test_file_target_appends_json_lines(demo, tmp_path) -> None:
    url, ids = demo
    target = tmp_path / "lineage.jsonl"
    for _ in range(2):
        result = CliRunner().invoke(cli, ["export", ids[0], "--db", url, "--openlineage",
                                          str(target)])
        assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in target.read_text().splitlines()]
    assert [e["eventType"] for e in lines] == ["START", "COMPLETE"] * 2
    # Exporting again gives the same run id: a catalog sees the same run.
    assert len({e["run"]["runId"] for e in lines}) == 1
    for event in lines:
        _check_spec(event)


def test_a_refusing_receiver_makes_the_command_fail(demo, collector) -> None:
    url, ids = demo
    collector.status = 400
    result = CliRunner().invoke(cli, ["export", ids[0], "--db", url, "--openlineage",
                                      collector.url])
    assert result.exit_code == 1
    assert "2 failed" in result.output
