"""Stored windows of RAG traces with known properties, for the quality and drift tests.

Each trace is what an LCEL RAG chain stores: a root chain, a retriever with scored
documents, and an LLM call whose prompt got the top documents (``in_prompt``), with usage,
cost, parameters, a prompt template and the provider's response metadata. Everything a
window varies (model, template, scores, failures, latency, tokens) is an argument, so a
test knows exactly what differs between two windows.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from ragtrail.schemas import (
    CapturedRun,
    DocStage,
    Document,
    DocumentLink,
    Framework,
    LLMCostMetrics,
    LLMMetadata,
    LLMPerformanceMetrics,
    LLMRequestParameters,
    LLMResponseMetadata,
    LLMTokenUsage,
    PriceStatus,
    Run,
    RunError,
    RunKind,
    RunStatus,
    content_hash,
)
from ragtrail.store import open_store

NOW = datetime(2026, 11, 1, tzinfo=timezone.utc)
TEMPLATE_V1 = "System: answer from the context only.\nContext: {context}\nQuestion: {question}"
TEMPLATE_V2 = ("System: answer from the context only. Cite every source as [n].\n"
               "Context: {context}\nQuestion: {question}")


def _doc(j: int) -> Document:
    text = f"Chunk {j}: how write-ahead logging keeps readers and writers apart ({j})."
    return Document(document_id=f"kb-{j:04d}", content_hash=content_hash(text), content=text,
                    metadata={"source": f"kb/{j}.md"})


@dataclass
class Window:
    """``count`` traces from ``start``, one every ``step``; see the module docstring."""

    start: datetime
    count: int = 120
    step: timedelta = timedelta(minutes=5)
    app: str = "support"
    model: str = "gpt-4o-mini"
    model_version: str = "gpt-4o-mini-2024-07-18"
    template: str = TEMPLATE_V1
    temperature: float = 0.2
    score_mean: float = 0.80
    error_share: float = 0.0
    streamed: bool = False  # the calls streamed (and their time to first token was lost)
    latency_ms: float = 800.0
    tokens: int = 1200
    documents: tuple[int, ...] = tuple(range(0, 20))
    seed: int = 1

    def end(self) -> datetime:
        return self.start + self.step * self.count


def records(window: Window) -> list[CapturedRun]:
    """The stored records of every trace of ``window``."""
    rng = random.Random(window.seed)
    out: list[CapturedRun] = []
    errors = round(window.count * window.error_share)
    failing = set(rng.sample(range(window.count), errors))
    for i in range(window.count):
        out.extend(_trace(window, rng, window.start + window.step * i, i in failing))
    return out


def _trace(w: Window, rng: random.Random, t0: datetime, failed: bool) -> list[CapturedRun]:
    ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(3)]
    context = {"app_name": w.app, "app_version": "2.1.0", "user_hash": "u" * 64,
               "session_id": f"s-{rng.randrange(10)}", "request_type": "chat"}
    duration = max(10.0, rng.gauss(w.latency_ms, w.latency_ms * 0.1))
    question = f"How does WAL work? ({rng.randrange(10**6)})"
    answer = "Readers see a snapshot while the writer appends to the log."

    def run(rid: str, parent: str | None, path: str, kind: RunKind, name: str,
            offset: float, ms: float) -> Run:
        started = t0 + timedelta(milliseconds=offset)
        return Run(id=rid, trace_id=ids[0], parent_id=parent, path=path, kind=kind, name=name,
                   framework=Framework.LANGCHAIN, started_at=started,
                   ended_at=started + timedelta(milliseconds=ms), duration_ms=ms,
                   inputs={"question": question},
                   outputs=None if failed and kind is not RunKind.RETRIEVER else
                   {"answer": answer}, **context)

    root = run(ids[0], None, ids[0], RunKind.CHAIN, "RunnableSequence", 0, duration)
    retriever = run(ids[1], ids[0], f"{ids[0]}.{ids[1]}", RunKind.RETRIEVER, "VectorStoreRetriever",
                    1, 40)
    llm = run(ids[2], ids[0], f"{ids[0]}.{ids[2]}", RunKind.LLM, "ChatOpenAI", 50, duration - 60)
    picked = [_doc(j) for j in rng.sample(list(w.documents), 4)]
    scores = sorted((min(1.0, max(0.0, rng.gauss(w.score_mean, 0.05))) for _ in picked),
                    reverse=True)
    retrieved = [DocumentLink(run_id=ids[1], trace_id=ids[0], content_hash=d.content_hash,
                              document_id=d.document_id, stage=DocStage.RETRIEVED, rank=k,
                              score=s) for k, (d, s) in enumerate(zip(picked, scores, strict=True))]
    cited = [DocumentLink(run_id=ids[2], trace_id=ids[0], content_hash=d.content_hash,
                          document_id=d.document_id, stage=DocStage.IN_PROMPT, rank=k)
             for k, d in enumerate(picked[:2])]
    meta = LLMMetadata(
        provider="openai", provider_model=w.model,
        request_parameters=LLMRequestParameters(model=w.model, temperature=w.temperature,
                                                max_tokens=256),
        response_metadata=LLMResponseMetadata(finish_reason="stop", model_version=w.model_version,
                                              request_id=f"req_{rng.getrandbits(40):010x}"),
        performance_metrics=LLMPerformanceMetrics(total_duration_ms=duration - 60),
        prompt_template=w.template, prompt_template_hash=content_hash(w.template),
        output_text=None if failed else answer, streamed=w.streamed or None,
    )
    if failed:
        meta.cost_metrics = LLMCostMetrics(price_status=PriceStatus.NO_USAGE)
        for r in (root, llm):
            r.status = RunStatus.ERROR
            r.error = RunError(type="RateLimitError", message="429 Too Many Requests")
    else:
        tokens_in = max(1, int(rng.gauss(w.tokens * 0.9, w.tokens * 0.05)))
        tokens_out = max(1, int(w.tokens * 0.1))
        cost = Decimal("0.00000015") * tokens_in + Decimal("0.0000006") * tokens_out
        meta.token_usage = LLMTokenUsage(input_tokens=tokens_in, output_tokens=tokens_out,
                                         total_tokens=tokens_in + tokens_out)
        meta.cost_metrics = LLMCostMetrics(total_cost=cost, currency="USD",
                                           price_status=PriceStatus.PRICED)
    return [CapturedRun(run=root),
            CapturedRun(run=retriever, documents=picked, links=retrieved),
            CapturedRun(run=llm, llm=meta, documents=picked[:2], links=cited)]


def store_windows(url: str, *windows: Window) -> None:
    """Write every trace of ``windows`` into the database at ``url``."""
    store = open_store(url)
    try:
        for window in windows:
            store.write_batch(records(window))
    finally:
        store.close()
