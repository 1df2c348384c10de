"""Retention: purge whole traces by age, per app (and per tenant), from the command
line or from a policy file run by cron.

A trace goes with everything that belongs to it: its runs, LLM calls and document
links, its evaluations and their judges' traces, and the documents no remaining trace
links to (a document shared with a kept trace stays). A dry run does the very same
deletion inside a transaction and rolls it back, so its counts are exact.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator
from sqlalchemy.engine import Connection, Engine

from .._durations import parse_age
from ..errors import ConfigError
from ..store._retention import delete_traces
from ..store._tables import runs

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["PurgeResult", "RetentionPolicy", "RetentionRule", "apply_policy", "load_policy",
           "parse_age", "purge"]

class RetentionRule(BaseModel):
    """Keep traces of ``app`` (every app when None) and ``tenant`` (every tenant when
    None) for ``older_than`` (``30d``); older ones are purged."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    older_than: str
    app: str | None = None
    tenant: str | None = None

    @field_validator("older_than")
    @classmethod
    def _age(cls, value: str) -> str:
        parse_age(value)
        return value


class RetentionPolicy(BaseModel):
    """A policy file's content: ``[[rules]]`` tables (TOML) or ``{"rules": [...]}`` (JSON)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: list[RetentionRule]


def load_policy(path: str | Path) -> RetentionPolicy:
    """Read a retention policy from a TOML (``.toml``) or JSON file.

    Raises :class:`~ragtrail.errors.ConfigError` naming the file and the problem: an
    unknown key, a missing ``older_than``, a bad duration, a file that does not parse.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"policy file {path}: {exc.strerror or exc}") from None
    try:
        data: Any = (json.loads(text) if path.suffix.lower() == ".json"
                     else tomllib.loads(text))
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"policy file {path}: not valid "
                          f"{'JSON' if path.suffix.lower() == '.json' else 'TOML'}: {exc}"
                          ) from None
    try:
        return RetentionPolicy.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"]) or "(top level)"
            if error["type"] == "extra_forbidden":
                problems.append(f"unknown key {where!r} (allowed: rules; in a rule: "
                                f"older_than, app, tenant)")
            elif error["type"] == "missing":
                problems.append(f"missing key {where!r}")
            else:
                problems.append(f"{where}: {error['msg']}")
        raise ConfigError(f"policy file {path}: {'; '.join(problems)}") from None


@dataclass(frozen=True)
class PurgeResult:
    """What one purge deleted (or, with ``dry_run``, would delete)."""

    before: datetime
    app: str | None
    tenant: str | None
    traces: int
    counts: dict[str, int] = field(default_factory=dict)
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"before": self.before.isoformat(), "app": self.app, "tenant": self.tenant,
                "traces": self.traces, "rows": dict(self.counts), "dry_run": self.dry_run}


def _roots(conn: Connection, before: datetime, app: str | None, tenant: str | None
           ) -> list[str]:
    conditions = [runs.c.parent_id.is_(None), runs.c.started_at < before]
    if app is not None:
        conditions.append(runs.c.app_name == app)
    if tenant is not None:
        if "tenant" not in runs.c:
            raise ConfigError("this database keeps no tenants")
        conditions.append(runs.c.tenant == tenant)
    return sorted(set(conn.execute(sa.select(runs.c.trace_id).where(*conditions)).scalars()))


def purge(engine: Engine, *, older_than: timedelta | str, app: str | None = None,
          tenant: str | None = None, dry_run: bool = False,
          now: datetime | None = None) -> PurgeResult:
    """Delete the traces (of ``app``, of ``tenant``) whose root started more than
    ``older_than`` ago; with ``dry_run`` count them and change nothing."""
    age = parse_age(older_than) if isinstance(older_than, str) else older_than
    if not isinstance(age, timedelta) or age < timedelta(0):
        raise ConfigError(f"older_than must be a duration of 0 or more, got {older_than!r}")
    before = (now or datetime.now(timezone.utc)) - age
    with engine.connect() as conn:
        transaction = conn.begin()
        try:
            trace_ids = _roots(conn, before, app, tenant)
            counts = delete_traces(conn, trace_ids)
        except BaseException:
            transaction.rollback()
            raise
        if dry_run:
            transaction.rollback()
        else:
            transaction.commit()
    return PurgeResult(before, app, tenant, len(trace_ids), counts, dry_run)


def apply_policy(engine: Engine, policy: RetentionPolicy, *, dry_run: bool = False,
                 now: datetime | None = None) -> list[PurgeResult]:
    """Apply every rule of ``policy`` in order (one transaction each)."""
    moment = now or datetime.now(timezone.utc)
    return [purge(engine, older_than=rule.older_than, app=rule.app, tenant=rule.tenant,
                  dry_run=dry_run, now=moment) for rule in policy.rules]
