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
    "admin": "._admin:admin",
    "evals": "._evals:evals",
    "ui": "._ui:ui",
    "quality": "._quality:quality",
    "drift": "._quality:drift",
}

#: Entry point group through which other installed packages add commands (for example
#: ``ragtrail evaluate`` from ragtrail-llamaindex); loaded only when run or listed.
PLUGIN_GROUP = "ragtrail.commands"


def _plugins() -> dict[str, object]:
    """The ``ragtrail.commands`` entry points by name (not loaded)."""
    from importlib.metadata import entry_points

    return {entry.name: entry for entry in entry_points(group=PLUGIN_GROUP)}


class _Group(click.Group):
    """Loads its commands on demand; turns ragtrail's own errors into one line on
    stderr and exit status 1."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS, *_plugins()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            found = super().get_command(ctx, cmd_name)
            return found if found is not None else _plugin_command(cmd_name)
        module_name, attribute = target.split(":")
        command = getattr(importlib.import_module(module_name, __name__), attribute)
        if not isinstance(command, click.Command):  # pragma: no cover - a wrong table entry
            raise TypeError(f"{target} is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """List the commands; a plugin's is named without loading its package (which may
        import a framework), so ``ragtrail --help`` stays fast."""
        plugins = _plugins()
        rows = []
        for name in self.list_commands(ctx):
            if name in plugins and name not in COMMANDS:
                dist = getattr(plugins[name], "dist", None)
                rows.append((name, f"(from {getattr(dist, 'name', 'a plugin')})"))
                continue
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(formatter.width - 6 - len(name))))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except RagtrailError as exc:
            click.echo(f"ragtrail: error: {exc}", err=True)
            ctx.exit(1)


def _plugin_command(name: str) -> click.Command | None:
    """The command an installed package adds under ``name``; one that fails to load is
    left out, never the whole CLI."""
    entry = _plugins().get(name)
    if entry is None:
        return None
    try:
        command = entry.load()  # type: ignore[attr-defined]
    except Exception:  # a broken optional package must not break `ragtrail`
        return None
    return command if isinstance(command, click.Command) else None


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
