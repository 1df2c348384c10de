"""Governance commands: ``purge`` (retention), ``erase`` (erasure on request),
``audit`` (who read what), ``db roles`` (least-privilege PostgreSQL roles)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from ._common import db_option, emit_json, json_option, open_trail, parse_age, parse_when

if TYPE_CHECKING:
    from ..store import SqlStore


def open_for_admin(db: str | None) -> SqlStore:
    """The store of a command that deletes (purge, erase): an existing ragtrail database
    at this ragtrail's schema revision, never created or migrated here (an older one is
    refused with the ``ragtrail db upgrade`` command)."""
    from ..governance.roles import check_rights
    from ..store import open_store

    with open_trail(db):  # an existing ragtrail database, or one clear error
        pass
    store = open_store(db, auto_upgrade=False)
    try:
        check_rights(store.engine, "admin", store.url)
    except BaseException:
        store.close()
        raise
    return store


@click.command()
@db_option
@json_option
@click.option("--older-than", "older_than", help="Age, e.g. 30d, 12h.")
@click.option("--app", help="Only traces of this app (its app_name).")
@click.option("--tenant", help="Only traces of this tenant.")
@click.option("--policy", "policy_file", type=click.Path(dir_okay=False),
              help="Apply a retention policy file (TOML or JSON) instead, e.g. from cron.")
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; change nothing.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def purge(db: str | None, as_json: bool, older_than: str | None, app: str | None,
          tenant: str | None, policy_file: str | None, dry_run: bool, yes: bool) -> None:
    """Delete traces whose root started more than --older-than ago (retention).

    A trace goes whole: runs, LLM calls, document links, its evaluations and their
    judge traces, documents no remaining trace links to and tool definitions no
    remaining LLM call offers.
    """
    from ..governance import RetentionPolicy, RetentionRule, apply_policy, load_policy

    if policy_file is not None:
        if older_than or app or tenant:
            raise click.UsageError("--policy replaces --older-than, --app and --tenant")
        policy = load_policy(policy_file)
    elif older_than is None:
        raise click.UsageError("give --older-than AGE (with --app/--tenant) or --policy FILE")
    else:
        parse_age(older_than)  # a bad duration: one clear line
        policy = RetentionPolicy(rules=[RetentionRule(older_than=older_than, app=app,
                                                      tenant=tenant)])
    with open_for_admin(db) as store:
        if not (dry_run or yes) and sys.stdin.isatty():
            click.confirm(f"Delete traces by {len(policy.rules)} rule(s) from {store.url}?",
                          abort=True)
        results = apply_policy(store.engine, policy, dry_run=dry_run)
    if as_json:
        emit_json({"dry_run": dry_run, "deleted_traces": sum(r.traces for r in results),
                   "before": results[0].before.isoformat() if len(results) == 1 else None,
                   "results": [r.as_dict() for r in results]})
        return
    verb = "would delete" if dry_run else "deleted"
    for r in results:
        scope = " ".join(f"{k}={v}" for k, v in (("app", r.app), ("tenant", r.tenant)) if v)
        rows = ", ".join(f"{n} {t}" for t, n in r.counts.items() if n)
        click.echo(f"{verb} {r.traces} traces started before {r.before.isoformat()}"
                   f"{' (' + scope + ')' if scope else ''}{': ' + rows if rows else ''}")


@click.command()
@db_option
@json_option
@click.option("--user", "user_id", help="The user id as the application gave it at capture.")
@click.option("--session", "session_id", help="A session id.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def erase(db: str | None, as_json: bool, user_id: str | None, session_id: str | None,
          yes: bool) -> None:
    """Delete every trace of a user (--user) or of a session (--session), with a receipt.

    The user id is hashed as at capture (set the same RAGTRAIL_USER_HASH_SECRET). The
    receipt (time, the hash, never the id, traces and rows deleted) goes to the erasure
    log; `ragtrail audit --erasures` lists them.
    """
    from ..governance import erase as erase_subject

    if (user_id is None) == (session_id is None):
        raise click.UsageError("give exactly one of --user ID or --session ID")
    with open_for_admin(db) as store:
        if not yes and sys.stdin.isatty():
            click.confirm(f"Delete every trace of this {'user' if user_id else 'session'}?",
                          abort=True)
        receipt = erase_subject(store.engine, user_id=user_id, session_id=session_id)
    if as_json:
        emit_json(receipt.as_dict())
        return
    if receipt.traces == 0:
        click.echo(f"no traces of {receipt.subject} {receipt.subject_hash[:16]}…; nothing "
                   f"deleted (receipt {receipt.id} logged)")
        return
    rows = ", ".join(f"{n} {t}" for t, n in receipt.counts.items() if n)
    click.echo(f"erased {receipt.traces} traces of {receipt.subject} "
               f"{receipt.subject_hash[:16]}…: {rows} (receipt {receipt.id})")


@click.command()
@db_option
@json_option
@click.option("--since", help="From (ISO date/time, or a duration ago like 7d).")
@click.option("--erasures", is_flag=True, help="The erasure log instead of the read audit.")
def audit(db: str | None, as_json: bool, since: str | None, erasures: bool) -> None:
    """Who read which trace through the web view or its API (oldest first); with
    --erasures, the erasure receipts."""
    import sqlalchemy as sa

    from ..errors import ConfigError
    from ..governance import erasure_receipts
    from ..governance.audit import reads

    with open_trail(db) as trail:
        when = parse_when(since, "--since")
        try:
            rows: list[Any] = (erasure_receipts(trail.store.engine, since=when) if erasures
                               else reads(trail.store.engine, since=when))
        except sa.exc.ProgrammingError:  # a tenant's reader: the logs span tenants
            log = "erasure log" if erasures else "read audit"
            raise ConfigError(f"this role cannot read the {log} of {trail.url}; connect as "
                              "a reader without --tenant or the admin role") from None
    if as_json:
        emit_json([r.as_dict() for r in rows])
        return
    for r in rows:
        if erasures:
            click.echo(f"{r.erased_at.isoformat()}  {r.subject} {r.subject_hash}  "
                       f"{r.traces} traces  {r.counts}")
        else:
            click.echo(f"{r.read_at.isoformat()}  {r.reader}  {r.view}  {r.trace_id or '-'}")


@click.command("roles")
@click.argument("url", required=False)
@db_option
@json_option
@click.option("--writer", help="Role for capture: inserts and updates only.")
@click.option("--reader", help="Role for the command line and the web view: selects only "
                               "(and audit lines).")
@click.option("--admin", help="Role for migrations, purges and erasures (owns the tables).")
@click.option("--tenant", help="Tie the reader and writer to one tenant (row-level security).")
@click.option("--print-sql", is_flag=True, help="Print the SQL instead of running it.")
def db_roles(url: str | None, db: str | None, as_json: bool, writer: str | None,
             reader: str | None, admin: str | None, tenant: str | None,
             print_sql: bool) -> None:
    """Create least-privilege PostgreSQL roles for the ragtrail tables at URL.

    Run it as the tables' owner (or a superuser) after `ragtrail db upgrade`, and again
    after each upgrade (new tables get their grants). Roles are created with LOGIN and no
    password: set one (ALTER ROLE ... PASSWORD) or use your server's authentication.
    """
    from ..governance.roles import create_roles, valid_role_name
    from ..store import open_store

    for name, option in ((writer, "--writer"), (reader, "--reader"), (admin, "--admin")):
        if name is not None:
            valid_role_name(name, option)
    with open_trail(url or db):  # an existing ragtrail database at this revision
        pass
    with open_store(url or db, auto_upgrade=False) as store:
        statements = create_roles(store.engine, writer=writer, reader=reader, admin=admin,
                                  tenant=tenant, print_only=print_sql)
    if as_json:
        emit_json({"applied": not print_sql, "statements": statements})
    elif print_sql:
        click.echo(";\n".join(statements) + ";")
    else:
        click.echo(f"roles ready ({len(statements)} statements): "
                   + ", ".join(f"{k} {v}" for k, v in (("writer", writer), ("reader", reader),
                                                        ("admin", admin)) if v))
