"""Durations as people type them (``30d``, ``12h``, ``90m``, ``2w``); standard library only."""

from __future__ import annotations

import re
from datetime import timedelta

from .errors import ConfigError

__all__ = ["DURATION", "UNITS", "parse_age"]

DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_age(value: str) -> timedelta:
    """A duration such as ``30d``; ConfigError for anything else."""
    match = DURATION.match(value) if isinstance(value, str) else None
    if not match:
        raise ConfigError(f"expected a duration like 30d, 12h or 90m, got {value!r}")
    return timedelta(**{UNITS[match.group(2)]: float(match.group(1))})
