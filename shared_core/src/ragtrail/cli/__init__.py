"""The ``ragtrail`` command line.

Every command takes ``--db URL`` (default: ``$RAGTRAIL_URL``, else ``./ragtrail.db``),
has ``--help``, exits 0 on success and prints a one-line error with a non-zero status
for a bad id, a bad URL or a missing database.
"""

from __future__ import annotations

import sys

import click

from ..errors import RagtrailError

__all__ = ["cli", "main"]


class _Group(click.Group):
    """Turns ragtrail's own errors into one line on stderr and exit status 1."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except RagtrailError as exc:
            click.echo(f"ragtrail: error: {exc}", err=True)
            ctx.exit(1)


@click.group(cls=_Group)
@click.version_option(package_name="ragtrail", prog_name="ragtrail")
def cli() -> None:
    """Inspect what ragtrail captured: traces, lineage, documents, usage."""


@cli.command()
def schema() -> None:
    """Print the JSON Schema of the stored records."""
    from ..schemas import json_schema_text

    click.echo(json_schema_text())


@cli.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
@click.argument("url", required=False)
@click.option("--db", "db_url", help="Database URL (same as the argument).")
def db_upgrade(url: str | None, db_url: str | None) -> None:
    """Migrate the database at URL to this ragtrail's schema revision."""
    from ..store import upgrade_database

    revision = upgrade_database(url or db_url)
    click.echo(f"database is at schema revision {revision}")


def _register() -> None:
    from ._commands import diff, documents, lineage, replay, show, traces, usage
    from ._io import export_cmd, import_cmd, purge

    for command in (traces, show, lineage, documents, usage, diff, replay, export_cmd,
                    import_cmd, purge):
        cli.add_command(command)
    from ._ui import ui

    cli.add_command(ui)


_register()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``ragtrail`` console script."""
    try:
        cli.main(args=argv, prog_name="ragtrail", standalone_mode=True)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
