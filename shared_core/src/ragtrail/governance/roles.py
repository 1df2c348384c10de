"""Least-privilege PostgreSQL roles for ragtrail: a writer for capture, a reader for
the command line and the web view, an admin for migrations, purges and erasures.

- **writer**: ``INSERT`` and ``UPDATE`` on what capture writes (runs, LLM calls,
  documents, document links, tool definitions, payloads, evaluations, vendors); no
  ``DELETE``, and
  ``SELECT`` only on the schema revision table, the key columns an upsert compares (ids
  and hashes, never content) and the labels and numbers it sums into ``usage_rollup``
  and ``quality_rollup`` (which it may read and update), so it cannot read the trail.
- **reader**: ``SELECT`` on every ragtrail table, and ``INSERT`` (only) on ``read_audit``
  for the audit of reads: it can add audit lines, never change or delete them.
- **admin**: owns the tables (migrations alter them), so it may also delete (purge, erase).

:func:`roles_sql` returns the statements (``ragtrail db roles --print-sql``);
:func:`create_roles` runs them in one transaction. :func:`check_rights` is what capture
and the read commands call on PostgreSQL to refuse a role that cannot do their work with
one clear line instead of a permission error half-way.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ..errors import ConfigError
from ..store._migrate import VERSION_TABLE
from ..store._tables import metadata

__all__ = ["check_rights", "create_roles", "roles_sql", "valid_role_name", "valid_tenant"]

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
#: Tables capture writes (inserts and upserts).
CAPTURE_TABLES = ("runs", "llm_calls", "documents", "document_links", "tool_definitions",
                  "payloads", "evaluations", "vendors")
#: Key columns an upsert compares (ON CONFLICT needs SELECT on them); no content.
_KEY_COLUMNS = {"runs": ("id",), "llm_calls": ("run_id",), "documents": ("content_hash",),
                "document_links": ("run_id", "content_hash", "stage"),
                "tool_definitions": ("definition_hash",), "payloads": ("hash",),
                "evaluations": ("id",),
                "vendors": ("name",)}
#: What the store reads to keep ``usage_rollup`` and ``quality_rollup`` (labels, numbers
#: and whether context values are set, never content).
_USAGE_COLUMNS = {
    "runs": ("trace_id", "parent_id", "app_name", "request_type", "tenant", "kind",
             "started_at", "status", "schema_version", "truncated", "redacted",
             "app_version", "user_hash", "session_id"),
    "llm_calls": ("trace_id", "started_at", "provider", "provider_model",
                  "prompt_template_hash", "total_cost", "input_tokens", "output_tokens",
                  "total_tokens", "cache_read_tokens", "cache_creation_tokens",
                  "reasoning_tokens", "price_status", "model_version", "request_id",
                  "finish_reason", "time_to_first_token_ms", "streamed", "temperature",
                  "max_tokens"),
    "document_links": ("trace_id", "document_id", "score"),
}
ROLLUP_TABLE = "usage_rollup"
SUMMARY_TABLE = "quality_rollup"
AUDIT_TABLE = "read_audit"

Purpose = Literal["capture", "read", "admin"]


def valid_role_name(name: str, option: str = "role") -> str:
    """``name`` if it is a plain SQL identifier (letters, digits, ``_``; not starting with
    a digit; at most 63 characters), else :class:`ConfigError` naming ``option``."""
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise ConfigError(f"{option} {name!r} is not a valid role name: use letters, digits "
                          "and _, not starting with a digit, at most 63 characters")
    return name


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def valid_tenant(tenant: str) -> str:
    """``tenant`` if it is a usable tenant name (non-empty text, at most 200 characters,
    no control characters), else :class:`ConfigError`."""
    if (not isinstance(tenant, str) or not tenant.strip() or len(tenant) > 200
            or any(ord(c) < 32 for c in tenant)):
        raise ConfigError(f"--tenant {tenant!r} is not a valid tenant name: non-empty text, "
                          "at most 200 characters, no control characters")
    return tenant


def _tenant_sql(s: str, tenant: str, writer: str | None, reader: str | None) -> list[str]:
    """Row-level security: every other role keeps seeing every row (one permissive
    policy), the tenant's reader sees only its tenant's rows in every table that holds
    trace data, and its writer can only write its tenant's runs."""
    lit = "'" + valid_tenant(tenant).replace("'", "''") + "'"
    out: list[str] = []
    for table in _TENANT_TABLES:
        t = f"{s}.{_q(table)}"
        out += [f"ALTER TABLE {t} ENABLE ROW LEVEL SECURITY",
                f"DROP POLICY IF EXISTS ragtrail_all ON {t}",
                f"CREATE POLICY ragtrail_all ON {t} USING (true) WITH CHECK (true)"]
    runs = f"{s}.{_q('runs')}"
    for role in (r for r in (writer, reader) if r is not None):
        policy = _q(f"ragtrail_tenant_{role}"[:63])
        # The rollups' tenant is their runs'.
        for t in (runs, f"{s}.{_q(ROLLUP_TABLE)}", f"{s}.{_q(SUMMARY_TABLE)}"):
            out += [f"DROP POLICY IF EXISTS {policy} ON {t}",
                    f"CREATE POLICY {policy} ON {t} AS RESTRICTIVE FOR ALL TO {_q(role)} "
                    f"USING (tenant = {lit}) WITH CHECK (tenant = {lit})"]
    if reader is not None:
        policy = _q(f"ragtrail_tenant_{reader}"[:63])
        # Rows without a tenant column are visible through the runs the reader sees
        # (the subqueries are themselves filtered by the runs policy above).
        through = {
            "llm_calls": f"EXISTS (SELECT 1 FROM {runs} r WHERE r.id = llm_calls.run_id)",
            "document_links": f"EXISTS (SELECT 1 FROM {runs} r "
                              f"WHERE r.id = document_links.run_id)",
            "documents": f"EXISTS (SELECT 1 FROM {s}.{_q('document_links')} l "
                         f"WHERE l.content_hash = documents.content_hash)",
            # A payload stored once is shared by every run holding the same content.
            "payloads": f"EXISTS (SELECT 1 FROM {runs} r WHERE r.inputs_ref = payloads.hash) "
                        f"OR EXISTS (SELECT 1 FROM {runs} r WHERE r.outputs_ref = payloads.hash)",
            "evaluations": f"EXISTS (SELECT 1 FROM {runs} r WHERE r.id = evaluations.run_id)",
        }
        for table, condition in through.items():
            t = f"{s}.{_q(table)}"
            out += [f"DROP POLICY IF EXISTS {policy} ON {t}",
                    f"CREATE POLICY {policy} ON {t} AS RESTRICTIVE FOR SELECT "
                    f"TO {_q(reader)} USING ({condition})"]
    return out


#: Tables holding trace data, under row-level security when a role has a tenant.
_TENANT_TABLES = ("runs", "llm_calls", "document_links", "documents", "payloads",
                  "evaluations", ROLLUP_TABLE, SUMMARY_TABLE)
#: Tables a tenant's reader gets no SELECT on (they span tenants).
_CROSS_TENANT = ("erasure_log", "read_audit")


def roles_sql(*, schema: str, writer: str | None = None, reader: str | None = None,
              admin: str | None = None, tenant: str | None = None,
              existing: Sequence[str] = ()) -> list[str]:
    """The statements creating (``existing`` roles are only granted to) and granting the
    roles, for the ragtrail tables of ``schema``; with ``tenant``, the writer and reader
    are tied to that tenant by row-level security."""
    names = [(n, o) for n, o in ((writer, "--writer"), (reader, "--reader"),
                                 (admin, "--admin")) if n is not None]
    if not names:
        raise ConfigError("give at least one of --writer, --reader or --admin")
    for name, option in names:
        valid_role_name(name, option)
    if len({n for n, _ in names}) != len(names):
        raise ConfigError("the writer, reader and admin roles must be different roles")
    if tenant is not None:
        valid_tenant(tenant)
        if writer is None and reader is None:
            raise ConfigError("--tenant ties a --writer or --reader to a tenant: give one")
    s = _q(schema)
    tables = [t for t in metadata.tables] + [VERSION_TABLE]
    out: list[str] = []
    for name, _ in names:
        if name not in existing:
            out.append(f"CREATE ROLE {_q(name)} LOGIN")
        out.append(f"GRANT USAGE ON SCHEMA {s} TO {_q(name)}")
    if writer is not None:
        w = _q(writer)
        out.append(f"GRANT SELECT ON {s}.{_q(VERSION_TABLE)} TO {w}")
        for table in CAPTURE_TABLES:
            cols = ", ".join(_q(c) for c in _KEY_COLUMNS[table] + _USAGE_COLUMNS.get(table, ()))
            out.append(f"GRANT INSERT, UPDATE ON {s}.{_q(table)} TO {w}")
            out.append(f"GRANT SELECT ({cols}) ON {s}.{_q(table)} TO {w}")
        out.append(f"GRANT SELECT ON {s}.{_q('vendors')} TO {w}")
        for table in (ROLLUP_TABLE, SUMMARY_TABLE):
            out.append(f"GRANT SELECT, INSERT, UPDATE ON {s}.{_q(table)} TO {w}")
    if reader is not None:
        r = _q(reader)
        for table in tables:
            if tenant is None or table not in _CROSS_TENANT:
                out.append(f"GRANT SELECT ON {s}.{_q(table)} TO {r}")
        out.append(f"GRANT INSERT ON {s}.{_q(AUDIT_TABLE)} TO {r}")
    if admin is not None:
        a = _q(admin)
        out.append(f"GRANT CREATE ON SCHEMA {s} TO {a}")
        for table in tables:
            out.append(f"ALTER TABLE {s}.{_q(table)} OWNER TO {a}")
    if tenant is not None:
        out += _tenant_sql(s, tenant, writer, reader)
    return out


def _schema_and_roles(conn: Connection) -> tuple[str, set[str]]:
    schema = conn.execute(sa.text("SELECT current_schema()")).scalar_one()
    roles = set(conn.execute(sa.text("SELECT rolname FROM pg_roles")).scalars())
    return str(schema), roles


def create_roles(engine: Engine, *, writer: str | None = None, reader: str | None = None,
                 admin: str | None = None, tenant: str | None = None,
                 print_only: bool = False) -> list[str]:
    """Create (or update the grants of) the roles on the PostgreSQL database of
    ``engine``, in one transaction; returns the statements. ``print_only``: only
    return them."""
    if engine.dialect.name != "postgresql":
        raise ConfigError("database roles are a PostgreSQL feature; on SQLite, file "
                          "permissions decide who reads and writes (one file per tenant)")
    with engine.begin() as conn:
        schema, existing = _schema_and_roles(conn)
        statements = roles_sql(schema=schema, writer=writer, reader=reader, admin=admin,
                               tenant=tenant, existing=sorted(existing))
        if not print_only:
            for statement in statements:
                conn.execute(sa.text(statement))
    return statements


_NEEDS: dict[str, tuple[tuple[str, str], ...]] = {
    "capture": tuple((t, "INSERT") for t in ("runs", "llm_calls", "documents",
                                             "document_links", "payloads")),
    "read": tuple((t, "SELECT") for t in ("runs", "llm_calls", "documents",
                                          "document_links", "payloads")),
    "admin": tuple((t, "DELETE") for t in ("runs", "llm_calls", "documents",
                                           "document_links", "evaluations", "payloads")),
}
_ROLE_HINT = {"capture": "a writer role", "read": "a reader role", "admin": "an admin role"}


def check_rights(engine: Engine, purpose: Purpose, shown: str) -> None:
    """Raise one clear :class:`ConfigError` when the PostgreSQL role ``engine`` connects
    as lacks a right ``purpose`` needs (nothing is checked on SQLite)."""
    if engine.dialect.name != "postgresql":
        return
    with engine.connect() as conn:
        missing = [f"{right} on {table}" for table, right in _NEEDS[purpose]
                   if not conn.execute(sa.text("SELECT has_table_privilege(:t, :r)"),
                                       {"t": table, "r": right}).scalar_one()]
        user = conn.execute(sa.text("SELECT current_user")).scalar_one()
        conn.rollback()
    if missing:
        action = {"capture": "capture into", "read": "read", "admin": "purge or erase in"}
        raise ConfigError(
            f"role {user} cannot {action[purpose]} {shown}: it lacks {', '.join(missing)}; "
            f"connect as {_ROLE_HINT[purpose]} (see ragtrail db roles)")
