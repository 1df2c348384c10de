"""Stored traces as OpenLineage ``RunEvent``s (START, then COMPLETE, FAIL or ABORT).

One run per trace: the job is the application (namespace = app name, name = the root
run's name), the inputs are the sources of the documents that were in the prompt (their
``source`` / file path / URL metadata; else the retriever they came from, as one
dataset per collection), the output is the application's answers. A ``ragtrail`` run
facet carries the trace id, models, tokens and cost. Nothing is claimed that is not
stored: a trace with no document in a prompt has no input dataset.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import attr
from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    DatasetFacet,
    RunFacet,
    error_message_run,
    job_type_job,
)
from openlineage.client.transport.file import FileConfig, FileTransport
from openlineage.client.transport.http import HttpConfig, HttpTransport

from ..query import DocumentUse, Lineage
from ..schemas import DocStage, RunStatus

__all__ = ["LineageSummary", "emit_lineages", "events_for", "openlineage_client"]

def _version() -> str:
    from .. import __version__

    return __version__


#: The producer URI of every event and facet ragtrail emits.
PRODUCER = f"urn:ragtrail:{_version()}"
#: Schema URI prefix of ragtrail's own facets (described in the README's mapping).
FACET_SCHEMA = "urn:ragtrail:openlineage:facets"
#: Document metadata keys naming where a document came from, most specific first.
SOURCE_KEYS = ("source", "file_path", "url", "source_url", "path", "file_name", "filename")
#: Namespace of the application's answers and of collections without a source.
DEFAULT_NAMESPACE = "ragtrail"


@attr.define
class RagtrailRunFacet(RunFacet):
    """ragtrail's run facet: the trace, its models, tokens and cost."""

    traceId: str
    models: list[str] = attr.field(factory=list)
    llmCalls: int = 0
    inputTokens: int = 0
    outputTokens: int = 0
    totalTokens: int = 0
    totalCost: float | None = None
    currency: str | None = None
    unpricedCalls: int = 0

    @staticmethod
    def _get_schema() -> str:
        return f"{FACET_SCHEMA}:RagtrailRunFacet"


@attr.define
class RagtrailDocumentsFacet(DatasetFacet):
    """Which documents of an input dataset were in the prompt, by id and content hash."""

    documents: list[dict[str, Any]] = attr.field(factory=list)

    @staticmethod
    def _get_schema() -> str:
        return f"{FACET_SCHEMA}:RagtrailDocumentsFacet"


def openlineage_client(target: str, timeout_s: float = 5.0) -> OpenLineageClient:
    """A client whose transport is HTTP for an ``http(s)://`` URL, else a JSON-lines file.

    A URL with a path posts there (``http://host:5000/api/v1/lineage``); a URL without
    one posts to OpenLineage's default ``api/v1/lineage``.
    """
    if target.startswith(("http://", "https://")):
        parts = urlsplit(target)
        base = f"{parts.scheme}://{parts.netloc}"
        endpoint = parts.path.lstrip("/") or "api/v1/lineage"
        config = HttpConfig(url=base, endpoint=endpoint, timeout=timeout_s,
                            retry={"total": 2, "backoff_factor": 0.2,
                                   "status_forcelist": [500, 502, 503, 504]})
        return OpenLineageClient(transport=HttpTransport(config))
    return OpenLineageClient(transport=FileTransport(FileConfig(log_file_path=target,
                                                                append=True)))


def run_uuid(trace_id: str) -> str:
    """The OpenLineage run id of a trace: a UUID derived from its id (stable)."""
    digest = hashlib.sha256(f"ragtrail.openlineage\x00{trace_id}".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def _source_dataset(use: DocumentUse, collections: Mapping[str, str],
                    namespace: str) -> tuple[str, str]:
    for key in SOURCE_KEYS:
        value = use.metadata.get(key)
        if isinstance(value, str) and value.strip():
            value = value.strip()
            parts = urlsplit(value)
            if parts.scheme in ("http", "https", "s3", "gs", "abfss", "file") and \
                    (parts.netloc or parts.scheme == "file"):
                return f"{parts.scheme}://{parts.netloc}", parts.path or "/"
            if value.startswith("/") or key in ("file_path", "path"):
                return "file", value
            return namespace, value
    # No source recorded: the collection, named after the retriever that found it.
    return namespace, f"collection/{collections.get(use.content_hash, 'unknown')}"


def events_for(lineage: Lineage, *, namespace: str | None = None,
               include_content: bool = True) -> list[RunEvent]:
    """START and COMPLETE / FAIL / ABORT events of one stored trace ([] without a root)."""
    root = lineage.root
    if root is None:
        return []
    job_namespace = namespace or root.app_name or DEFAULT_NAMESPACE
    job = Job(namespace=job_namespace, name=root.name or "trace", facets={
        "jobType": job_type_job.JobTypeJobFacet(processingType="STREAMING",
                                                integration="RAGTRAIL", jobType="RAG_QUERY"),
    })
    kinds = {run.id: run for run in lineage.runs}
    collections: dict[str, str] = {}
    for use in lineage.documents:
        if use.stage is DocStage.RETRIEVED and use.content_hash not in collections:
            run = kinds.get(use.run_id)
            collections[use.content_hash] = run.name if run is not None else "unknown"
    inputs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for use in lineage.documents_at(DocStage.IN_PROMPT):
        key = _source_dataset(use, collections, job_namespace)
        inputs.setdefault(key, []).append({"documentId": use.document_id,
                                           "contentHash": use.content_hash})
    input_datasets = [
        InputDataset(namespace=ns, name=name,
                     facets={"ragtrailDocuments": RagtrailDocumentsFacet(documents=docs)})
        for (ns, name), docs in sorted(inputs.items())]
    outputs = [OutputDataset(namespace=job_namespace, name="answers")]
    run_id = run_uuid(lineage.trace_id)
    start = RunEvent(eventType=RunState.START, eventTime=root.started_at.isoformat(),
                     run=Run(runId=run_id), job=job, producer=PRODUCER,
                     inputs=input_datasets, outputs=outputs)
    facets: dict[str, RunFacet] = {"ragtrail": _run_facet(lineage)}
    if root.status is RunStatus.OK:
        state = RunState.COMPLETE
    elif root.status is RunStatus.ERROR:
        state = RunState.FAIL
        if root.error is not None:
            facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
                message=f"{root.error.type}: {root.error.message}" if include_content
                else root.error.type,
                programmingLanguage="python", stackTrace=root.error.stack)
    else:  # cancelled, or abandoned (never ended): neither completed nor failed
        state = RunState.ABORT
    ended = root.ended_at or root.started_at
    end = RunEvent(eventType=state, eventTime=ended.isoformat(),
                   run=Run(runId=run_id, facets=facets), job=job, producer=PRODUCER,
                   inputs=input_datasets, outputs=outputs)
    return [start, end]


def _run_facet(lineage: Lineage) -> RagtrailRunFacet:
    models = sorted({c.metadata.provider_model for c in lineage.llm_calls
                     if c.metadata.provider_model})
    usage = [c.metadata.token_usage for c in lineage.llm_calls if c.metadata.token_usage]
    currencies = {c.metadata.cost_metrics.currency for c in lineage.llm_calls
                  if c.metadata.cost_metrics is not None and c.metadata.cost_metrics.currency}
    total: Decimal | None = lineage.total_cost
    return RagtrailRunFacet(
        traceId=lineage.trace_id, models=models, llmCalls=len(lineage.llm_calls),
        inputTokens=sum(u.input_tokens or 0 for u in usage),
        outputTokens=sum(u.output_tokens or 0 for u in usage),
        totalTokens=lineage.total_tokens,
        totalCost=float(total) if total is not None else None,
        currency=currencies.pop() if len(currencies) == 1 else None,
        unpricedCalls=lineage.unpriced_calls)


@dataclass
class LineageSummary:
    """What ``ragtrail export --openlineage`` emitted."""

    traces: int = 0
    events: int = 0
    failed: int = 0


def emit_lineages(lineages: Iterable[Lineage], client: OpenLineageClient, *,
                  app_name: str | None = None, include_content: bool = True) -> LineageSummary:
    """Emit every trace's events; an event the transport could not deliver is counted."""
    summary = LineageSummary()
    for lineage in lineages:
        summary.traces += 1
        for event in events_for(lineage, namespace=app_name, include_content=include_content):
            try:
                client.emit(event)
            except Exception:  # the HTTP transport raises on a refused or lost event
                summary.failed += 1
            else:
                summary.events += 1
    return summary
