"""``ragtrail.default_trail()``: one default Trail per process, opened once, for every adapter."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

_CHILD = """
import ragtrail
from ragtrail.errors import StoreUnavailableError
outcomes = []
for _ in range(3):
    try:
        trail = ragtrail.default_trail(remedy="pass a Trail to the test")
        outcomes.append("same" if trail is ragtrail.default_trail() else "other")
    except StoreUnavailableError as exc:
        outcomes.append("refused" if "said once" in str(exc) else "unavailable")
    except Exception as exc:
        outcomes.append(type(exc).__name__)
print(",".join(outcomes))
"""


def _child(url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RAGTRAIL_URL": url}
    return subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True,
                          text=True, timeout=120, check=False)


def test_the_default_trail_is_opened_once_and_shared(tmp_path: Path) -> None:
    done = _child(f"sqlite:///{tmp_path / 'ragtrail.db'}")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["same,same,same"]
    assert (tmp_path / "ragtrail.db").exists()


def test_a_default_trail_that_cannot_open_is_tried_once_and_said_once(tmp_path: Path) -> None:
    done = _child(f"sqlite:///{tmp_path / 'missing-directory' / 'ragtrail.db'}")
    assert done.returncode == 0, done.stderr
    first, *later = done.stdout.strip().split(",")
    assert first == "unavailable"  # the reason itself (no such directory), raised once
    assert later == ["refused", "refused"]  # then refused without trying again
    (line,) = done.stderr.splitlines()
    assert line.startswith("ragtrail: error: the default ragtrail Trail could not be opened")
    assert line.endswith("fix RAGTRAIL_URL or pass a Trail to the test")
