"""Options, output and database opening shared by the commands."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import click
from pydantic import BaseModel
from rich.console import Console, RenderableType

from ..errors import ConfigError, NotFoundError

F = TypeVar("F", bound=Callable[..., Any])

db_option = click.option(
    "--db", "db", envvar="RAGTRAIL_URL", default=None, metavar="URL",
    help="Database URL (default: $RAGTRAIL_URL, else sqlite:///./ragtrail.db).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


def open_trail(db: str | None) -> Any:
    """A read-mostly Trail on ``db``; a missing SQLite file is an error, not a new database."""
    from ..store import normalise_url
    from ..trail import Trail

    url = normalise_url(db)
    match = re.match(r"^sqlite\+?\w*:///(.+)$", url)
    if match and match.group(1) != ":memory:" and not Path(match.group(1)).exists():
        raise NotFoundError(f"no ragtrail database at {match.group(1)} (give --db URL)")
    return Trail(url, background=False)


def emit(value: Any, as_json: bool, renderable: Callable[[], RenderableType]) -> None:
    """Print ``value`` as JSON, or the rich view (plain text when not a terminal)."""
    if as_json:
        click.echo(json.dumps(_jsonable(value), indent=2, default=str))
        return
    console = Console(highlight=False, soft_wrap=False,
                      width=None if sys.stdout.isatty() else 140)
    console.print(renderable())


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


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


def parse_age(value: str) -> timedelta:
    """A duration such as ``30d``."""
    match = _DURATION.match(value)
    if not match:
        raise ConfigError(f"expected a duration like 30d, 12h or 90m, got {value!r}")
    return timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})
