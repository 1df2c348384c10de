"""The ``ragtrail`` command line.

Every command takes ``--db URL`` (default: ``$RAGTRAIL_URL``, else ``./ragtrail.db``)
and ``--json``, has ``--help``, exits 0 on success and prints a one-line error with a
non-zero status for a bad id, a bad URL or a missing database.

Commands are loaded when they are run (or listed by ``--help``), from the table
:data:`COMMANDS`: adding one is a module with a click command and a line there. A
command module imports only click at module level; SQLAlchemy, rich, pydantic and
the rest load inside the command, so ``ragtrail --help`` starts in a blink.
"""

from __future__ import annotations

import importlib
import sys

import click

from ..errors import RagtrailError

__all__ = ["COMMANDS", "cli", "main"]

#: Command name -> "module:attribute" of its click command (module relative to this one).
COMMANDS: dict[str, str] = {
    "traces": "._commands:traces",
    "show": "._commands:show",
    "lineage": "._commands:lineage",
    "documents": "._commands:documents",
    "usage": "._commands:usage",
    "diff": "._commands:diff",
    "replay": "._commands:replay",
    "export": "._io:export_cmd",
    "import": "._io:import_cmd",
    "purge": "._governance:purge",
    "erase": "._governance:erase",
    "audit": "._governance:audit",
    "schema": "._admin:schema",
    "db": "._admin:db",
    "evals": "._evals:evals",
    "ui": "._ui:ui",
}


def _plugin_names() -> list[str]:
    """Names of the commands other installed ragtrail packages add (entry point group
    ``ragtrail.commands``), without loading them."""
    from importlib.metadata import entry_points

    return [entry.name for entry in entry_points(group="ragtrail.commands")]


def _plugin_command(name: str) -> click.Command | None:
    """The plugin command ``name``; one that fails to load is skipped, never the whole CLI."""
    from importlib.metadata import entry_points

    for entry in entry_points(group="ragtrail.commands", name=name):
        try:
            command = entry.load()
        except Exception:  # a broken optional package must not break `ragtrail`
            continue
        if isinstance(command, click.Command):
            return command
    return None


class _Group(click.Group):
    """Loads its commands on demand; turns ragtrail's own errors into one line on
    stderr and exit status 1."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS, *_plugin_names()})

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Plugins are named, not loaded, here: loading one loads its framework.
        plugins = set(_plugin_names()) - set(COMMANDS)
        rows = []
        for name in self.list_commands(ctx):
            if name in plugins:
                rows.append((name, "(from an installed package; see --help)"))
                continue
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(
                    formatter.width - 6 - max(len(n) for n in self.list_commands(ctx)))))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name) or _plugin_command(cmd_name)
        module_name, attribute = target.split(":")
        command = getattr(importlib.import_module(module_name, __name__), attribute)
        if not isinstance(command, click.Command):  # pragma: no cover - a wrong table entry
            raise TypeError(f"{target} is not a click command")
        return command

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except RagtrailError as exc:
            click.echo(f"ragtrail: error: {exc}", err=True)
            ctx.exit(1)


@click.group(cls=_Group)
@click.version_option(package_name="ragtrail", prog_name="ragtrail")
def cli() -> None:
    """Inspect what ragtrail captured: traces, lineage, documents, usage.

    Read commands open the database read-only and never change it. Ids may be given
    whole or as a unique prefix (at least 4 characters), as git takes hashes.
    """


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``ragtrail`` console script."""
    try:
        cli.main(args=argv, prog_name="ragtrail", standalone_mode=True)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
