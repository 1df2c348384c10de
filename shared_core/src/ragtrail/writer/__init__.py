"""The durable background writer: the Sink between capture and the store.

Capture hands records to :meth:`BackgroundWriter.offer`, which only appends to a
bounded queue; one daemon thread writes batches with retries, isolates records the
store rejects into a dead-letter file, and spills to a disk spool while the store is
unavailable. See :class:`WriterConfig` for the limits and :class:`WriterStats` for
what is counted.
"""

from __future__ import annotations

import logging

from ._config import WriterConfig, default_spool_dir
from ._lifecycle import forget_owner, track_owner
from ._stats import DropReason, WriterStats
from ._writer import BackgroundWriter

__all__ = ["BackgroundWriter", "DropReason", "WriterConfig", "WriterStats", "default_spool_dir",
           "forget_owner", "track_owner"]

logging.getLogger("ragtrail.writer").addHandler(logging.NullHandler())
