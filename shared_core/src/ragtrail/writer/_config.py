"""The writer's limits: units in their names, defaults for a web service, checked when built."""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError

__all__ = ["WriterConfig", "default_spool_dir"]

_MiB = 1024 * 1024

# Fields that must be integers > 0, and integers >= 0 (0 disables the feature).
_POSITIVE_INTS = ("max_queue_events", "max_queue_bytes", "batch_max_events", "retry_max_attempts",
                  "spool_segment_max_bytes")
_NON_NEGATIVE_INTS = ("spool_max_bytes", "dead_letter_max_bytes")
_POSITIVE_FLOATS = ("flush_interval_s", "retry_initial_backoff_s", "retry_max_backoff_s",
                    "shutdown_timeout_s", "drop_log_interval_s")


@dataclass(frozen=True)
class WriterConfig:
    """Limits of the background writer. Invalid values raise :class:`ConfigError`.

    - ``max_queue_events`` / ``max_queue_bytes``: records waiting in memory, counted by
      number and by approximate serialized size (Python objects take about three times
      that in RAM). A batch being written counts too, and takes at most a quarter.
    - ``spill_high_water_fraction``: once the queue passes this share of either bound
      (the store is down, stuck or slower than the load) the oldest records move to
      the spool on disk under ``spool_dir``, at most ``spool_max_bytes`` (0: no spool)
      in segment files of ``spool_segment_max_bytes``. Records are refused, counted by
      reason, only when queue and spool are both full. The default, half, leaves room
      for a batch being written plus a flush interval of fresh records, so a healthy
      store that is briefly slower than the load does not send records through the
      disk (each spilled record costs a serialization and a parse more).
    - ``batch_max_events``: records per transaction; ``flush_interval_s``: longest wait
      of a record in a healthy queue before its batch is written.
    - ``retry_max_attempts`` with exponential backoff and jitter from
      ``retry_initial_backoff_s`` up to ``retry_max_backoff_s`` for transient errors;
      after that the batch waits on the spool and the store is probed every
      ``retry_max_backoff_s``. Any other exception from a write gets the same retries,
      then the spool, then the same retries again, and only then the dead-letter file.
    - ``shutdown_timeout_s``: default deadline of ``close()`` and of the exit hook.
    - ``drop_log_interval_s``: at most one drop warning per interval.
    - ``dead_letter_path`` (default ``dead-letter.jsonl`` in the spool directory), at
      most ``dead_letter_max_bytes``: records the store rejected, with the error.
    """

    max_queue_events: int = 100_000
    max_queue_bytes: int = 32 * _MiB
    batch_max_events: int = 1_000
    flush_interval_s: float = 1.0
    spool_dir: str | Path | None = None
    spool_max_bytes: int = 1024 * _MiB
    spool_segment_max_bytes: int = 8 * _MiB
    spill_high_water_fraction: float = 0.5
    retry_max_attempts: int = 5
    retry_initial_backoff_s: float = 0.05
    retry_max_backoff_s: float = 1.0
    shutdown_timeout_s: float = 5.0
    drop_log_interval_s: float = 60.0
    dead_letter_path: str | Path | None = None
    dead_letter_max_bytes: int = 64 * _MiB

    def __post_init__(self) -> None:
        for name in _POSITIVE_INTS:
            _check_int(name, getattr(self, name), minimum=1)
        for name in _NON_NEGATIVE_INTS:
            _check_int(name, getattr(self, name), minimum=0)
        for name in _POSITIVE_FLOATS:
            _check_positive_float(name, getattr(self, name))
        _check_fraction("spill_high_water_fraction", self.spill_high_water_fraction)
        if self.batch_max_events > self.max_queue_events:
            raise ConfigError(
                f"batch_max_events ({self.batch_max_events}) must not exceed "
                f"max_queue_events ({self.max_queue_events})"
            )
        if self.retry_initial_backoff_s > self.retry_max_backoff_s:
            raise ConfigError(
                f"retry_initial_backoff_s ({self.retry_initial_backoff_s}) must not exceed "
                f"retry_max_backoff_s ({self.retry_max_backoff_s})"
            )
        for name in ("spool_dir", "dead_letter_path"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, (str, os.PathLike)):
                raise ConfigError(f"{name} must be a path or None, not {type(value).__name__}")

    @property
    def spool_enabled(self) -> bool:
        """False when ``spool_max_bytes`` is 0: records then only wait in memory."""
        return self.spool_max_bytes > 0

    def resolved_spool_dir(self, key: str) -> Path:
        """``spool_dir``, or the default directory for ``key`` when unset."""
        if self.spool_dir is not None:
            return Path(self.spool_dir).expanduser()
        return default_spool_dir(key)

    def resolved_dead_letter_path(self, key: str) -> Path:
        """``dead_letter_path``, or ``dead-letter.jsonl`` in the spool directory."""
        if self.dead_letter_path is not None:
            return Path(self.dead_letter_path).expanduser()
        return self.resolved_spool_dir(key) / "dead-letter.jsonl"


def default_spool_dir(key: str) -> Path:
    """Default spool directory for a store: ``$XDG_CACHE_HOME/ragtrail/spool/<hash of key>``.

    ``key`` is usually the database URL; it is hashed so no credential reaches the
    file system, and two processes writing to the same database share one directory
    (each owns its own subdirectory; a dead process's spool is replayed by the next).
    """
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return Path(cache) / "ragtrail" / "spool" / digest


def _check_int(name: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an integer, not {value!r}")
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")


def _check_positive_float(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{name} must be a number of seconds, not {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name} must be a finite number > 0, got {value}")


def _check_fraction(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{name} must be a number, not {value!r}")
    if not 0 < value <= 1:
        raise ConfigError(f"{name} must be in (0, 1], got {value}")
