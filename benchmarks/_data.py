"""Synthetic RAG traces shaped like the LCEL chain's: 10 runs each, documents reused.

Each trace: root chain -> (parallel -> retriever [5 documents retrieved], passthrough),
(parallel -> reranker [3 reranked], format_docs), prompt, LLM call [3 in the prompt,
usage and cost], parser. Documents come from a corpus of ``traces / 5`` chunks with a
skewed popularity (a few are retrieved by thousands of traces, most by a handful), which
is what makes ``answers_using`` interesting. Traces spread evenly over 90 days, over 4
models, 3 apps, 5,000 users; 1 % fail. Deterministic for a given trace count.

Bump :data:`GENERATOR_VERSION` whenever the output changes: cached databases are keyed
by it.
"""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from ragtrail.schemas import (
    CapturedRun,
    DocStage,
    Document,
    DocumentLink,
    Framework,
    LLMCostMetrics,
    LLMMetadata,
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

GENERATOR_VERSION = 1
RUNS_PER_TRACE = 10
START = datetime(2026, 1, 1, tzinfo=timezone.utc)
SPAN = timedelta(days=90)
#: provider, model, USD per 1k input tokens, per 1k output tokens
MODELS = (("openai", "gpt-4o-mini", "0.00015", "0.0006"),
          ("openai", "gpt-4o", "0.0025", "0.01"),
          ("anthropic", "claude-3-5-haiku-latest", "0.0008", "0.004"),
          ("anthropic", "claude-sonnet-4-0", "0.003", "0.015"))
APPS = ("support-bot", "docs-search", "sales-assistant")
USERS = 5_000
_WORDS = (
    "sqlite", "wal", "checkpoint", "reader", "writer", "lock", "page", "journal", "postgres",
    "mvcc", "vacuum", "index", "gin", "jsonb", "btree", "query", "plan", "cache", "token",
    "model", "prompt", "answer", "context", "retrieval", "rerank", "chunk", "embedding",
    "vector", "latency", "cost", "budget", "trace", "lineage", "audit",
)


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(words)).capitalize() + "."


def user_hash(index: int) -> str:
    return f"uh{index:06d}" + "0" * 56


class TraceFactory:
    """Builds the records of trace ``i`` of ``traces`` (see module docstring)."""

    def __init__(self, traces: int) -> None:
        self.traces = traces
        self.corpus_size = max(50, traces // 5)
        rng = random.Random(20260101)
        self.corpus: list[Document] = []
        for j in range(self.corpus_size):
            text = f"[kb-{j:06d}] " + _text(rng, 45)
            self.corpus.append(Document(
                document_id=f"kb-{j:06d}", content_hash=content_hash(text), content=text,
                metadata={"source": f"kb/{j // 50:04d}.md", "chunk": j % 50}))
        self._step = SPAN / max(traces, 1)

    def pick_documents(self, rng: random.Random, count: int) -> list[Document]:
        """``count`` distinct documents, popular ones (low indexes) far more often."""
        chosen: dict[int, None] = {}
        while len(chosen) < count:
            chosen[int(self.corpus_size * rng.random() ** 3)] = None
        return [self.corpus[j] for j in chosen]

    def trace(self, i: int) -> list[CapturedRun]:
        rng = random.Random(i * 7919 + 1)
        t0 = START + self._step * i
        ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(RUNS_PER_TRACE)]
        failed = rng.random() < 0.01
        question = "How does " + _text(rng, 8).lower()[:-1] + "?"
        answer = "Per the context, " + _text(rng, 30)
        context = {"app_name": APPS[i % len(APPS)], "app_version": "1.4.0",
                   "user_hash": user_hash(rng.randrange(USERS)), "session_id": f"s-{i // 5}",
                   "request_type": "chat"}
        retrieved = self.pick_documents(rng, 5)
        reranked = retrieved[:3]
        b = _Builder(ids[0], t0, context)
        root = b.run(ids[0], None, RunKind.CHAIN, "RunnableSequence", 0, 900, question,
                     None if failed else answer)
        found = {"question": question, "documents": [d.document_id for d in retrieved]}
        p1 = b.run(ids[1], root, RunKind.CHAIN, "RunnableParallel<documents,question>", 1, 60,
                   question, found)
        ret = b.run(ids[2], p1, RunKind.RETRIEVER, "ScoredRetriever", 2, 40, {"query": question},
                    [{"id": d.document_id, "score": round(0.9 - k * 0.05, 4)}
                     for k, d in enumerate(retrieved)])
        ret.documents = list(retrieved)
        ret.links = [b.link(ids[2], d, DocStage.RETRIEVED, k, round(0.9 - k * 0.05, 4), None)
                     for k, d in enumerate(retrieved)]
        b.run(ids[3], p1, RunKind.CHAIN, "RunnablePassthrough", 3, 1, question, question)
        p2 = b.run(ids[4], root, RunKind.CHAIN, "RunnableParallel<context,question>", 62, 20,
                   {"question": question}, {"question": question})
        rer = b.run(ids[5], p2, RunKind.RERANKER, "rerank", 63, 8, {"question": question},
                    [d.document_id for d in reranked])
        rer.documents = list(reranked)
        order = sorted(range(3), key=lambda _: rng.random())
        rer.links = [b.link(ids[5], reranked[k], DocStage.RERANKED, rank, 1.0 - rank * 0.2, k)
                     for rank, k in enumerate(order)]
        prompt_text = "\n\n".join(d.content or "" for d in reranked)
        b.run(ids[6], p2, RunKind.CHAIN, "format_docs", 72, 1, None, prompt_text)
        b.run(ids[7], root, RunKind.PROMPT, "ChatPromptTemplate", 85, 1,
              {"question": question, "context": prompt_text},
              {"messages": [{"role": "system", "content": "Answer from the context only."},
                            {"role": "user", "content": prompt_text[:400]}]})
        llm = b.run(ids[8], root, RunKind.LLM, "ChatOpenAI", 90, 780, None,
                    None if failed else answer)
        llm.llm = _llm_meta(rng, MODELS[rng.randrange(len(MODELS))], prompt_text, question,
                            answer, llm.run.started_at, failed)
        llm.links = [b.link(ids[8], d, DocStage.IN_PROMPT, k, None, None)
                     for k, d in enumerate(reranked)]
        b.run(ids[9], root, RunKind.PARSER, "StrOutputParser", 872, 1, answer, answer)
        if failed:
            b.fail(ids[0], ids[8])
        return b.records


class _Builder:
    def __init__(self, trace_id: str, t0: datetime, context: dict[str, Any]) -> None:
        self.trace_id, self.t0, self.context = trace_id, t0, context
        self.records: list[CapturedRun] = []
        self._paths: dict[str, str] = {}

    def run(self, rid: str, parent: CapturedRun | None, kind: RunKind, name: str,
            offset_ms: int, duration_ms: int, inputs: Any, outputs: Any) -> CapturedRun:
        started = self.t0 + timedelta(milliseconds=offset_ms)
        segment = started.strftime("%Y%m%dT%H%M%S%fZ") + rid
        path = f"{parent.run.path}.{segment}" if parent is not None else segment
        run = Run(id=rid, trace_id=self.trace_id, parent_id=parent.run.id if parent else None,
                  path=path, kind=kind, name=name, framework=Framework.LANGCHAIN,
                  started_at=started, ended_at=started + timedelta(milliseconds=duration_ms),
                  duration_ms=float(duration_ms), inputs=inputs, outputs=outputs,
                  metadata={"ls_run_depth": path.count(".")}, **self.context)
        record = CapturedRun(run=run)
        record._approx_bytes = 1500
        self.records.append(record)
        return record

    def link(self, rid: str, doc: Document, stage: DocStage, rank: int, score: float | None,
             input_rank: int | None) -> DocumentLink:
        return DocumentLink(run_id=rid, trace_id=self.trace_id, content_hash=doc.content_hash,
                            document_id=doc.document_id, stage=stage, rank=rank, score=score,
                            input_rank=input_rank)

    def fail(self, *rids: str) -> None:
        for record in self.records:
            if record.run.id in rids:
                record.run.status = RunStatus.ERROR
                record.run.error = RunError(type="RateLimitError", message="429 Too Many Requests",
                                            http_status=429, retry_after_s=2.0)


def _llm_meta(rng: random.Random, model: tuple[str, str, str, str], prompt: str, question: str,
              answer: str, at: datetime, failed: bool) -> LLMMetadata:
    provider, name, price_in, price_out = model
    messages = [{"role": "system", "content": "Answer from the context only. Cite sources."},
                {"role": "user", "content": f"Context:\n{prompt}\n\nQuestion: {question}"}]
    meta = LLMMetadata(
        provider=provider, provider_model=name,
        request_parameters=LLMRequestParameters(model=name, temperature=0.2, max_tokens=256),
        response_metadata=LLMResponseMetadata(finish_reason="stop", model_version=f"{name}-2025",
                                              request_id=f"req_{rng.getrandbits(48):012x}"),
        request_timestamp=at, messages=messages, output_text=None if failed else answer,
        prompt_template="system: Answer from the context only.\nhuman: {context} {question}",
        prompt_template_hash="9" * 64,
    )
    if failed:
        meta.cost_metrics = LLMCostMetrics(price_status=PriceStatus.NO_USAGE)
        return meta
    tokens_in, tokens_out = 900 + rng.randrange(600), 40 + rng.randrange(200)
    cost_in = Decimal(price_in) * tokens_in / 1000
    cost_out = Decimal(price_out) * tokens_out / 1000
    meta.token_usage = LLMTokenUsage(input_tokens=tokens_in, output_tokens=tokens_out,
                                     total_tokens=tokens_in + tokens_out, cache_read_tokens=0,
                                     reasoning_tokens=0)
    meta.cost_metrics = LLMCostMetrics(input_cost=cost_in, output_cost=cost_out,
                                       total_cost=cost_in + cost_out, currency="USD",
                                       price_status=PriceStatus.PRICED)
    return meta


def records(traces: int, start: int = 0, factory: TraceFactory | None = None) -> list[CapturedRun]:
    """The records of traces ``start .. start + traces`` (of a ``traces``-sized factory)."""
    factory = factory or TraceFactory(traces)
    out: list[CapturedRun] = []
    for i in range(start, start + traces):
        out.extend(factory.trace(i))
    return out
