"""The dead-letter file: records the store rejected for good, one JSON line each, with the error."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

from .._log import SafeLogger
from ..schemas.flat import AnyRecord, FlatRecord
from ..schemas.record import SerializedRecord

__all__ = ["DeadLetterFile"]

logger = SafeLogger("ragtrail.writer")


class DeadLetterFile:
    """Appends ``{"at", "writer", "error", "record"}`` lines to a size-capped file.

    A record is counted as dead-lettered whether or not its line could be written
    (the file full or unwritable): it was rejected by the store either way, and the
    failure to keep it is logged.
    """

    def __init__(self, path: Path, *, max_bytes: int, writer_name: str) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._writer_name = writer_name

    def write(self, record: AnyRecord, error: BaseException) -> bool:
        """Append one rejected record; False when it could not be kept."""
        line = self._line(record, error)
        try:
            size = self.path.stat().st_size if self.path.exists() else 0
            if size + len(line) > self.max_bytes:
                logger.error("dead-letter file %s is full (%d bytes); record %s not kept",
                             self.path, self.max_bytes, record.id)
                return False
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # One write() per line on an O_APPEND descriptor: lines of concurrent
            # processes sharing the file do not interleave.
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)
        except OSError as exc:
            logger.error("cannot write dead-letter file %s: %s; record %s not kept",
                         self.path, exc, record.id)
            return False
        return True

    def _line(self, record: AnyRecord, error: BaseException) -> bytes:
        try:
            if isinstance(record, SerializedRecord):
                payload = record.data
            elif isinstance(record, FlatRecord):
                payload = record.plain()
            else:
                payload = json.loads(record.model_dump_json())
        except Exception as exc:  # a record that cannot be serialized
            payload = {"id": _safe_id(record), "unserializable": f"{type(exc).__name__}: {exc}"}
        entry = {
            "at": datetime.now(timezone.utc).isoformat(),
            "writer": self._writer_name,
            "error": f"{type(error).__name__}: {error}",
            "record": payload,
        }
        return (json.dumps(entry, ensure_ascii=False, default=str) + "\n").encode("utf-8")


def _safe_id(record: AnyRecord) -> str | None:
    try:
        return record.id
    except Exception:  # never fail while reporting a failure
        return None
