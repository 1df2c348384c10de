"""Paced load and a sampler of memory and writer state, for the reliability tests."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from ragtrail.writer import BackgroundWriter, WriterStats
from reliability._factory import fast_record


@dataclass
class Sample:
    at_s: float  # seconds since the sampler started
    rss_bytes: int
    stats: WriterStats
    spool_disk_bytes: int


class Sampler:
    """Samples RSS, writer stats and spool size on disk every ``interval_s`` in a thread."""

    def __init__(self, writer: BackgroundWriter, spool_dir: Path, interval_s: float = 0.1) -> None:
        self.writer = writer
        self.spool_dir = spool_dir
        self.interval_s = interval_s
        self.samples: list[Sample] = []
        self.baseline_rss = psutil.Process().memory_info().rss
        self._process = psutil.Process()
        self._stop = threading.Event()
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Sampler:
        self._t0 = time.monotonic()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def now_s(self) -> float:
        return time.monotonic() - self._t0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(Sample(self.now_s(), self._process.memory_info().rss,
                                       self.writer.stats(), spool_disk_bytes(self.spool_dir)))
            self._stop.wait(self.interval_s)

    @property
    def peak_growth_bytes(self) -> int:
        return max((s.rss_bytes for s in self.samples), default=0) - self.baseline_rss

    def first(self, after_s: float, predicate: Callable[[Sample], bool]) -> Sample | None:
        """The first sample at or after ``after_s`` for which ``predicate`` holds."""
        return next((s for s in self.samples if s.at_s >= after_s and predicate(s)), None)


def spool_disk_bytes(root: Path) -> int:
    """Bytes of spool segment files under ``root``."""
    total = 0
    for path in root.rglob("*.jsonl"):
        if path.name == "dead-letter.jsonl":
            continue
        with contextlib.suppress(OSError):  # replayed and deleted meanwhile
            total += path.stat().st_size
    return total


@dataclass
class LoadResult:
    accepted: list[str] = field(default_factory=list)
    refused: int = 0


def paced_load(writer: BackgroundWriter, *, rate_per_s: float, duration_s: float, prefix: str,
               events: dict[float, Callable[[], None]] | None = None) -> LoadResult:
    """Offer fresh records at ``rate_per_s`` for ``duration_s``; run ``events`` at their times."""
    pending = sorted((events or {}).items())
    result = LoadResult()
    t0 = time.monotonic()
    count = 0
    while True:
        elapsed = time.monotonic() - t0
        while pending and pending[0][0] <= elapsed:
            pending.pop(0)[1]()
        if elapsed >= duration_s:
            break
        target = min(int(rate_per_s * elapsed), int(rate_per_s * duration_s))
        while count < target:
            record = fast_record(prefix)
            if writer.offer(record):
                result.accepted.append(record.id)
            else:
                result.refused += 1
            count += 1
        time.sleep(0.002)
    for _ in range(count, int(rate_per_s * duration_s)):
        record = fast_record(prefix)
        if writer.offer(record):
            result.accepted.append(record.id)
        else:
            result.refused += 1
    for _, event in pending:
        event()
    return result
