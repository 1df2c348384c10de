"""Shared by the governance tests: the command line run in-process."""

from __future__ import annotations

from typing import Any

from click.testing import CliRunner

from ragtrail.cli import cli


def run(*args: str, code: int = 0) -> Any:
    """Run ``ragtrail ARGS`` and check its exit status (0 unless ``code``)."""
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result
