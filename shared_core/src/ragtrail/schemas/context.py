"""Application context and runtime environment attached to traces."""

from __future__ import annotations

import importlib.metadata
import platform
import socket
from typing import Any

from pydantic import Field

from ._base import Model

__all__ = ["AppContext", "Environment"]


class AppContext(Model):
    """Who and what a trace belongs to. The user id is stored only as a keyed hash."""

    app_name: str | None = None
    app_version: str | None = None
    user_hash: str | None = Field(None, description="HMAC-SHA256 of the user id, hex.")
    session_id: str | None = None
    request_type: str | None = None
    tenant: str | None = Field(None, description="Tenant the trace belongs to (see Governance).")
    tags: list[str] = Field(default_factory=list)

    def merged(self, other: AppContext | None) -> AppContext:
        """This context with ``other``'s non-empty values taking precedence."""
        if other is None:
            return self
        data = self.model_dump()
        for key, value in other.model_dump().items():
            if value not in (None, []):
                data[key] = value
        return AppContext(**data)


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


class Environment(Model):
    """Where a trace ran: host, OS, Python and framework versions."""

    hostname: str | None = None
    os: str | None = None
    python_version: str | None = None
    ragtrail_version: str | None = None
    langchain_core_version: str | None = None
    llama_index_core_version: str | None = None

    @classmethod
    def detect(cls) -> Environment:
        """Read the current process's environment (cheap; call once per process)."""
        return cls(
            hostname=socket.gethostname(),
            os=f"{platform.system()} {platform.release()}",
            python_version=platform.python_version(),
            ragtrail_version=_version("ragtrail"),
            langchain_core_version=_version("langchain-core"),
            llama_index_core_version=_version("llama-index-core"),
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict without empty values."""
        return self.dump()
