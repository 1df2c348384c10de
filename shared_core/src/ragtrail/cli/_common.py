"""Options, output and database opening shared by the commands.

Only click and the standard library are imported here at module level: anything
heavier (SQLAlchemy through the Trail, rich for tables) loads when a command runs.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import click

from .._durations import DURATION, UNITS
from .._durations import parse_age as parse_age  # the commands' import
from ..errors import ConfigError

if TYPE_CHECKING:
    from rich.console import RenderableType

    from ..trail import Trail

db_option = click.option(
    "--db", "db", envvar="RAGTRAIL_URL", default=None, metavar="URL",
    help="Database URL (default: $RAGTRAIL_URL, else sqlite:///./ragtrail.db).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")

#: Width used when neither COLUMNS nor a terminal says one.
FALLBACK_WIDTH = 140


def open_trail(db: str | None) -> Trail:
    """The Trail of a read command: opened read-only, so nothing is ever created or
    changed; a missing file or a database without ragtrail's tables is an error."""
    from ..trail import Trail

    return Trail.open_readonly(db)


def open_trail_for_write(db: str | None) -> Trail:
    """A Trail that may create the database and its tables (``import``)."""
    from ..trail import Trail

    return Trail(db, background=False)


def resolve(trail: Trail, given: str) -> str:
    """The full run or trace id for an id or a unique prefix of one."""
    return trail.resolve_id(given)


def output_width() -> int:
    """``COLUMNS``, else the terminal's width, else :data:`FALLBACK_WIDTH`."""
    return shutil.get_terminal_size((FALLBACK_WIDTH, 24)).columns


def emit_json(value: Any) -> None:
    """Print ``value`` as one JSON document."""
    click.echo(json.dumps(_jsonable(value), indent=2, default=str))


def emit(value: Any, as_json: bool, renderable: Callable[[], RenderableType]) -> None:
    """Print ``value`` as JSON, or the rich view fitted to the output width (plain
    text, no colour, when not a terminal)."""
    if as_json:
        emit_json(value)
        return
    from rich.console import Console

    console = Console(highlight=False, soft_wrap=False, width=output_width())
    console.print(renderable(), crop=False)


def _jsonable(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


_DURATION, _UNITS = DURATION, UNITS


def parse_when(value: str | None, name: str) -> datetime | None:
    """``2025-01-31``, an ISO datetime, or a duration ago such as ``7d`` or ``12h``."""
    if value is None:
        return None
    match = _DURATION.match(value)
    if match:
        delta = timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})
        return datetime.now(timezone.utc) - delta
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{name} must be an ISO date/datetime or a duration like 7d, "
                          f"got {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
