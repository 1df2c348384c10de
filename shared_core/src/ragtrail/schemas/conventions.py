"""Names used across ragtrail, in one place.

Every string that is stored, queried or matched against framework data lives here
as a documented constant, never as a literal scattered around the code.
"""

from __future__ import annotations

from enum import Enum

__all__ = [
    "CURRENT_SCHEMA_VERSION",
    "NON_ANSWERING_KINDS",
    "ROLE_KEY",
    "DocStage",
    "Framework",
    "MetaKey",
    "PriceStatus",
    "RunKind",
    "RunStatus",
    "StepRole",
]

#: Version of the records ragtrail writes today. Older shapes are migrated by
#: :mod:`ragtrail.schemas.registry`.
CURRENT_SCHEMA_VERSION = "3.0"


class _StrEnum(str, Enum):
    """``enum.StrEnum`` for Python 3.10: members compare and format as their value."""

    def __str__(self) -> str:
        return str(self.value)


class RunKind(_StrEnum):
    """What a run does. Anything a framework reports that is not listed is ``CHAIN``."""

    CHAIN = "chain"
    LLM = "llm"
    RETRIEVER = "retriever"
    RERANKER = "reranker"
    EMBEDDING = "embedding"
    TOOL = "tool"
    AGENT = "agent"
    PROMPT = "prompt"
    PARSER = "parser"

    @classmethod
    def coerce(cls, value: object) -> RunKind:
        """Map any value to a kind; unknown values become :attr:`CHAIN`."""
        if isinstance(value, RunKind):
            return value
        try:
            return cls(str(value).lower())
        except ValueError:
            return cls.CHAIN


class RunStatus(_StrEnum):
    """How a run ended."""

    OK = "ok"
    ERROR = "error"
    CANCELLED = "cancelled"
    ABANDONED = "abandoned"


class Framework(_StrEnum):
    """Which integration produced a run."""

    LANGCHAIN = "langchain"
    LLAMAINDEX = "llamaindex"
    MANUAL = "manual"


class DocStage(_StrEnum):
    """How far a document got on its way to the answer, in pipeline order."""

    RETRIEVED = "retrieved"
    RERANKED = "reranked"
    IN_PROMPT = "in_prompt"

    @property
    def order(self) -> int:
        """Position in the pipeline: retrieved < reranked < in_prompt."""
        return _STAGE_ORDER[self]


_STAGE_ORDER = {DocStage.RETRIEVED: 0, DocStage.RERANKED: 1, DocStage.IN_PROMPT: 2}


class PriceStatus(_StrEnum):
    """Why a cost is what it is. An unknown price is never a silent zero."""

    PRICED = "priced"
    UNKNOWN_MODEL = "unknown_model"
    NO_USAGE = "no_usage"
    ERROR = "error"


#: Kinds of run inside which an LLM call does not produce the answer: the call of an
#: LLM reranker or filter, a query rewriter inside a retriever, a parser's retry, an
#: embedding step. Documents in such a call's prompt are not ``in_prompt`` (they are the
#: step's input, not what the answer was built from).
NON_ANSWERING_KINDS = frozenset({RunKind.RETRIEVER, RunKind.RERANKER, RunKind.EMBEDDING,
                                 RunKind.PARSER})

#: Run-metadata key naming the role of a step whose kind does not say it (an evaluator,
#: a query rewriter written as a plain chain). Any :class:`StepRole` value makes the LLM
#: calls inside that step non-answering calls.
ROLE_KEY = "ragtrail_role"


class StepRole(_StrEnum):
    """Roles a step can declare under :data:`ROLE_KEY` in its run metadata."""

    EVALUATOR = "evaluator"
    QUERY_REWRITER = "query_rewriter"
    FILTER = "filter"
    RERANKER = "reranker"
    GUARDRAIL = "guardrail"


class MetaKey(_StrEnum):
    """Keys ragtrail reads from framework run metadata for the application context."""

    USER_ID = "user_id"
    SESSION_ID = "session_id"
    APP_NAME = "app_name"
    APP_VERSION = "app_version"
    REQUEST_TYPE = "request_type"
    TENANT = "tenant"
