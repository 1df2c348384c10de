"""ragtrail: a complete, queryable audit trail of LLM and RAG runs.

    from ragtrail import Trail
    trail = Trail()                       # SQLite file ./ragtrail.db, or $RAGTRAIL_URL
    lineage = trail.lineage(run_id)       # which documents, prompt, model, tokens, cost?
    reader = Trail.open_readonly()        # queries only: never creates or changes anything
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._default import default_trail
from .errors import (
    AmbiguousIdError,
    ConfigError,
    NotFoundError,
    RagtrailError,
    SchemaTooNewError,
    StoreUnavailableError,
)

if TYPE_CHECKING:
    from .trail import Trail

__all__ = [
    "AmbiguousIdError",
    "ConfigError",
    "NotFoundError",
    "RagtrailError",
    "SchemaTooNewError",
    "StoreUnavailableError",
    "Trail",
    "__version__",
    "default_trail",
]

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # Lazy: `import ragtrail.schemas` must not pull in SQLAlchemy and the writer.
    if name == "Trail":
        from .trail import Trail

        return Trail
    raise AttributeError(f"module 'ragtrail' has no attribute {name!r}")
