"""One backoff for every retry loop of ragtrail (the writer, the live exporters)."""

from __future__ import annotations

from tenacity import wait_exponential, wait_random
from tenacity.wait import wait_base

__all__ = ["exponential_backoff"]


def exponential_backoff(initial_s: float, max_s: float) -> wait_base:
    """Exponential backoff from ``initial_s`` up to ``max_s``, plus up to ``initial_s`` of
    jitter, in the names every tenacity in the pinned range knows:
    ``wait_exponential_jitter(initial=...)`` warns from 9.2 on, and an application that
    runs with warnings as errors would lose every retried write to that warning."""
    return wait_exponential(multiplier=initial_s, max=max_s) + wait_random(0, initial_s)
