"""The read side: SQL queries over a ragtrail store.

Every function takes the store's SQLAlchemy engine (``SqlStore.engine``) and works
the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

from ._documents import answers_using
from ._evaluations import (
    Evaluation,
    EvaluationSource,
    JudgeCost,
    evaluations,
    judge_cost_by_provider,
)
from ._ids import MIN_PREFIX, resolve_id
from ._lineage import lineage
from ._models import DocumentUsage, DocumentUse, Lineage, RunNode, TraceSummary, UsageRow
from ._traces import traces
from ._usage import GROUP_KEYS, usage

__all__ = [
    "GROUP_KEYS",
    "MIN_PREFIX",
    "DocumentUsage",
    "DocumentUse",
    "Evaluation",
    "EvaluationSource",
    "JudgeCost",
    "Lineage",
    "RunNode",
    "TraceSummary",
    "UsageRow",
    "answers_using",
    "evaluations",
    "judge_cost_by_provider",
    "lineage",
    "resolve_id",
    "traces",
    "usage",
]
