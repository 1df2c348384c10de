"""Realistic records for writer tests: an LLM run with its metadata and retrieved documents."""

from __future__ import annotations

import itertools
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from ragtrail.schemas import (
    CapturedRun,
    DocStage,
    Document,
    DocumentLink,
    Framework,
    LLMMetadata,
    Run,
    RunKind,
)
from ragtrail.schemas.llm import (
    LLMCostMetrics,
    LLMPerformanceMetrics,
    LLMRequestParameters,
    LLMResponseMetadata,
    LLMTokenUsage,
)

_T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)
_counter = itertools.count()
_CORPUS = [
    "SQLite's write-ahead log lets readers proceed while one writer appends to the log. " * 3,
    "PostgreSQL JSONB columns can be indexed with GIN for containment queries. " * 3,
    "A bounded queue turns a slow consumer into counted drops instead of unbounded memory. " * 3,
    "Exponential backoff with jitter spreads retries so clients do not stampede a server. " * 3,
    "Idempotent inserts make a retried batch safe after an ambiguous commit. " * 3,
]


def make_record(prefix: str = "run", *, n_docs: int = 3, approx: bool = True) -> CapturedRun:
    """One finished LLM run in a trace, with token usage, cost, prompt and document links."""
    i = next(_counter)
    run_id = f"{prefix}-{i}-{uuid.uuid4().hex[:8]}"
    trace_id = f"trace-{i // 4}-{prefix}"
    started = _T0 + timedelta(milliseconds=i)
    docs = [
        Document.from_text(_CORPUS[(i + k) % len(_CORPUS)] + f" [chunk {i % 97}-{k}]",
                           metadata={"source": f"kb/{(i + k) % 50}.md", "page": k})
        for k in range(n_docs)
    ]
    links = [
        DocumentLink(run_id=run_id, trace_id=trace_id, content_hash=d.content_hash,
                     document_id=d.document_id, stage=DocStage.RETRIEVED, rank=k,
                     score=round(1.0 - k * 0.1, 3))
        for k, d in enumerate(docs)
    ]
    question = f"What does the writer do when the database is down? (#{i})"
    llm = LLMMetadata(
        provider="openai",
        provider_model="gpt-4o-mini",
        token_usage=LLMTokenUsage(input_tokens=812, output_tokens=96, total_tokens=908),
        cost_metrics=LLMCostMetrics(input_cost=Decimal("0.0001218"),
                                    output_cost=Decimal("0.0000576"),
                                    total_cost=Decimal("0.0001794"), currency="USD"),
        performance_metrics=LLMPerformanceMetrics(total_duration_ms=840.5,
                                                  tokens_per_second=114.2),
        request_parameters=LLMRequestParameters(model="gpt-4o-mini", temperature=0.2,
                                                max_tokens=512),
        response_metadata=LLMResponseMetadata(finish_reason="stop", request_id=f"req-{i}"),
        request_timestamp=started,
        response_timestamp=started + timedelta(milliseconds=840),
        messages=[
            {"role": "system", "content": "Answer from the context.\n" + "\n".join(
                d.content or "" for d in docs)},
            {"role": "user", "content": question},
        ],
        output_text="It spills records to a size-capped spool and replays them in order.",
    )
    run = Run(
        id=run_id, trace_id=trace_id, parent_id=f"{trace_id}-root", path=f"{i:012d}.{run_id}",
        kind=RunKind.LLM, name="ChatOpenAI", framework=Framework.LANGCHAIN,
        started_at=started, ended_at=started + timedelta(milliseconds=840), duration_ms=840.0,
        inputs={"question": question}, outputs={"text": llm.output_text},
        tags=["reliability"], metadata={"ls_provider": "openai"},
    )
    record = CapturedRun(run=run, llm=llm, documents=docs, links=links)
    if approx:
        # The Recorder sets this while bounding payloads; here a fixed estimate will do.
        record._approx_bytes = APPROX_BYTES
    return record


#: Serialized size of a typical record from :func:`make_record` (measured once).
APPROX_BYTES = len(make_record(approx=False).model_dump_json())


_TEMPLATES: list[CapturedRun] = []


def fast_record(prefix: str = "run") -> CapturedRun:
    """A record like :func:`make_record` (same shape and size, unique run and links),
    copied from one of 97 templates: about 15 µs instead of 150 µs, so a load generator
    offering thousands per second does not take the writer's share of the CPU.
    """
    if not _TEMPLATES:
        _TEMPLATES.extend(make_record("template") for _ in range(97))
    i = next(_counter)
    template = _TEMPLATES[i % len(_TEMPLATES)]
    run_id = f"{prefix}-{i}-{uuid.uuid4().hex[:8]}"
    trace_id = f"trace-{i // 4}-{prefix}"
    started = _T0 + timedelta(milliseconds=i)
    run = template.run.model_copy(update={
        "id": run_id, "trace_id": trace_id, "parent_id": f"{trace_id}-root",
        "path": f"{i:012d}.{run_id}", "started_at": started,
        "ended_at": started + timedelta(milliseconds=840)})
    links = [link.model_copy(update={"run_id": run_id, "trace_id": trace_id})
             for link in template.links]
    record = template.model_copy(update={"run": run, "links": links})
    record._approx_bytes = APPROX_BYTES
    return record
