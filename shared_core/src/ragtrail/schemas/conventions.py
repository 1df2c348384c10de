"""Names used across ragtrail, in one place.

Every string that is stored, queried or matched against framework data lives here
as a documented constant, never as a literal scattered around the code.
"""

from __future__ import annotations

from enum import Enum

__all__ = [
    "CURRENT_SCHEMA_VERSION",
    "DocStage",
    "Framework",
    "MetaKey",
    "PriceStatus",
    "RunKind",
    "RunStatus",
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


class MetaKey(_StrEnum):
    """Keys ragtrail reads from framework run metadata for the application context."""

    USER_ID = "user_id"
    SESSION_ID = "session_id"
    APP_NAME = "app_name"
    APP_VERSION = "app_version"
    REQUEST_TYPE = "request_type"
