"""Schema and database maintenance: ``schema``, ``db upgrade``, ``admin
rebuild-summaries``."""

from __future__ import annotations

import click

from ._common import db_option, emit_json, json_option


@click.command()
@json_option
def schema(as_json: bool) -> None:
    """Print the JSON Schema of the stored records (JSON with or without --json).

    Its ``user_hash_key`` says whether user ids are hashed with your key
    ($RAGTRAIL_USER_HASH_SECRET: "configured") or ragtrail's public one ("default").
    """
    import json

    from ..redaction import user_hash_key_kind
    from ..schemas import json_schema

    document = {**json_schema(), "user_hash_key": user_hash_key_kind()}
    click.echo(json.dumps(document, indent=2, sort_keys=True))


@click.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
@click.argument("url", required=False)
@click.option("--db", "db_url", help="Database URL (same as the argument).")
@json_option
def db_upgrade(url: str | None, db_url: str | None, as_json: bool) -> None:
    """Create or migrate the ragtrail schema at URL to this ragtrail's revision."""
    from ..store import upgrade_database
    from ..store._url import display_url, parse_url

    target = url or db_url
    revision = upgrade_database(target)
    if as_json:
        emit_json({"database": display_url(parse_url(target)), "revision": revision})
    else:
        click.echo(f"database is at schema revision {revision}")


@click.group()
def admin() -> None:
    """Administration of a ragtrail database."""


@admin.command("rebuild-summaries")
@db_option
@json_option
def rebuild_summaries(db: str | None, as_json: bool) -> None:
    """Recompute the pre-aggregated tables from the stored rows: usage_rollup (read by
    `ragtrail usage`) and quality_rollup (`ragtrail quality`, `ragtrail drift`).

    The store keeps both as it writes and deletes; this repairs them (for example after
    rows were changed by hand) in one transaction.
    """
    from ..store import _rollups, _summaries
    from ._governance import open_for_admin

    with open_for_admin(db) as store, store.engine.begin() as conn:
        usage_buckets = _rollups.rebuild(conn)
        quality_buckets = _summaries.rebuild(conn)
    if as_json:
        emit_json({"usage_rollup": usage_buckets, "quality_rollup": quality_buckets})
    else:
        click.echo(f"usage_rollup: {usage_buckets} buckets; "
                   f"quality_rollup: {quality_buckets} buckets")


__all__ = ["admin", "db", "schema"]

from ._governance import db_roles  # noqa: E402  (a db subcommand defined with governance)

db.add_command(db_roles)
