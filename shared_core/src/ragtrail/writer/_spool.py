"""The on-disk spool: records waiting for the store, as JSON lines in numbered segment files.

Layout: ``<spool_dir>/<owner>/lock`` and ``<spool_dir>/<owner>/<20-digit number>.jsonl``,
one owner directory per live writer. The owner holds an exclusive ``flock`` on its
``lock`` file for as long as it lives, so a directory whose lock can be taken belongs
to a process that died: the next writer on the same spool directory adopts it and
replays its segments. Two live processes never replay the same segment.

Each line is ``<seq> <record JSON>\n``; ``seq`` is the writer's offer sequence number
(meaningless to an adopting process, which ignores it). The record JSON is the flat form
(:class:`~ragtrail.schemas.flat.FlatRecord`: rows with JSON columns as text), or the
plain CapturedRun JSON for a record that has no flat form; both are read back.
Segments are replayed in number order and deleted once read and stored. The spill
thread appends, the writer thread reads (one lock between them); segment files are
written unbuffered so a forked child holds no copy of unwritten bytes.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .._log import SafeLogger
from ..schemas.flat import AnyRecord, read_record
from ..sink import PreparedBatch

try:  # POSIX only; without it orphaned spools of dead processes are not adopted.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["Spool", "SpoolRead"]

logger = SafeLogger("ragtrail.writer")

_LOCK_NAME = "lock"
_SUFFIX = ".jsonl"
_FIRST_NUMBER = 10**12  # appends count up from here, prepends count down
_TMP_PREFIX = ".tmp-"


@dataclass
class _Owner:
    """An owner directory whose lock this process holds."""

    path: Path
    fd: int
    own: bool
    segments: int = 0


@dataclass
class _Segment:
    path: Path
    owner: _Owner
    size: int = 0
    offset: int = 0  # bytes already replayed
    fd: int | None = None  # open for appending (the active segment only)


@dataclass
class SpoolRead:
    """Records read from the head segment, not yet committed."""

    segment: _Segment
    start: int = 0  # file offset of the first line
    seqs: list[int | None] = field(default_factory=list)
    records: list[AnyRecord | None] = field(default_factory=list)  # None: unreadable line
    ends: list[int] = field(default_factory=list)  # file offset after each line
    #: The readable records as the store prepared them ahead (``CapableStore.prepare_batch``).
    prepared: PreparedBatch | None = None


class Spool:
    """Size-capped FIFO of serialized records on disk, with adoption of dead writers' spools."""

    def __init__(self, root: Path, *, max_bytes: int, segment_max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.segment_max_bytes = min(segment_max_bytes, max_bytes) or 1
        self.bytes = 0
        self._segments: deque[_Segment] = deque()
        self._own: _Owner | None = None
        self._adopted: dict[str, _Owner] = {}
        self._next_number = _FIRST_NUMBER
        self._prev_number = _FIRST_NUMBER - 1
        # The spill thread appends while the writer thread reads, commits and prepends.
        self._lock = threading.RLock()

    @property
    def has_data(self) -> bool:
        """True while any segment holds unreplayed lines."""
        with self._lock:
            return any(seg.offset < seg.size for seg in self._segments)

    # --- adoption ----------------------------------------------------------------------

    def adopt_orphans(self) -> int:
        """Take over spools of dead writers; returns how many records they hold."""
        if fcntl is None or not self.root.is_dir():
            return 0
        events = 0
        with self._lock:
            for path in sorted(self.root.iterdir()):
                if not path.is_dir() or path.name.startswith(_TMP_PREFIX):
                    continue
                if path.name in self._adopted or (self._own and path == self._own.path):
                    continue
                events += self._adopt(path)
        return events

    def _adopt(self, path: Path) -> int:
        fd = _try_lock(path / _LOCK_NAME)
        if fd is None:
            return 0
        owner = _Owner(path, fd, own=False)
        self._adopted[path.name] = owner
        events = size = 0
        found: list[_Segment] = []
        for seg_path in sorted(path.glob(f"*{_SUFFIX}")):
            seg_size, lines = _count_lines(seg_path)
            found.append(_Segment(seg_path, owner, size=seg_size))
            events += lines
            size += seg_size
        owner.segments = len(found)
        # A dead writer's records are older than anything this one has spooled.
        self._segments.extendleft(reversed(found))
        self.bytes += size
        if not owner.segments:
            self._remove_owner(owner)
        elif events:
            logger.info("adopting %d spooled records left in %s", events, path)
        return events

    # --- writing -----------------------------------------------------------------------

    def room_for(self, lines: list[bytes]) -> int:
        """How many of ``lines`` (a prefix) fit under the cap."""
        total = self.bytes
        for count, line in enumerate(lines):
            total += len(line)
            if total > self.max_bytes:
                return count
        return len(lines)

    def append(self, lines: list[bytes]) -> int:
        """Append as many lines as fit (a prefix); returns how many. Raises OSError."""
        with self._lock:
            accepted = self.room_for(lines)
            for chunk in self._chunks(lines[:accepted]):
                segment = self._active_segment(len(chunk))
                self._write(segment, chunk)
            return accepted

    def prepend(self, lines: list[bytes]) -> bool:
        """Put lines before everything else (a batch older than the spool); all or nothing."""
        with self._lock:
            if not lines or self.room_for(lines) < len(lines):
                return False
            owner = self._own_owner()
            segment = _Segment(owner.path / _segment_name(self._prev_number), owner)
            self._prev_number -= 1
            segment.fd = _open_append(segment.path)
            owner.segments += 1
            self._segments.appendleft(segment)
            try:
                self._write(segment, b"".join(lines))
            finally:
                self._seal(segment)
            return True

    def _chunks(self, lines: list[bytes]) -> Iterator[bytes]:
        chunk: list[bytes] = []
        chunk_size = 0
        room = self._active_room()
        for line in lines:
            if chunk and chunk_size + len(line) > room:
                yield b"".join(chunk)
                chunk, chunk_size, room = [], 0, self.segment_max_bytes
            chunk.append(line)
            chunk_size += len(line)
        if chunk:
            yield b"".join(chunk)

    def _active_room(self) -> int:
        tail = self._segments[-1] if self._segments else None
        if tail is None or tail.fd is None:
            return self.segment_max_bytes
        return max(0, self.segment_max_bytes - tail.size)

    def _active_segment(self, needed: int) -> _Segment:
        tail = self._segments[-1] if self._segments else None
        if tail is not None and tail.fd is not None:
            if tail.size == 0 or tail.size + needed <= self.segment_max_bytes:
                return tail
            self._seal(tail)
        owner = self._own_owner()
        segment = _Segment(owner.path / _segment_name(self._next_number), owner)
        self._next_number += 1
        segment.fd = _open_append(segment.path)
        owner.segments += 1
        self._segments.append(segment)
        return segment

    def _write(self, segment: _Segment, data: bytes) -> None:
        if segment.fd is None:  # pragma: no cover - guarded by callers
            raise OSError("spool segment is not open for writing")
        view = memoryview(data)
        written = 0
        try:
            while written < len(data):
                written += os.write(segment.fd, view[written:])
        except OSError:
            # A short write (disk full) would leave half a line: cut it off.
            with contextlib.suppress(OSError):
                os.ftruncate(segment.fd, segment.size)
            raise
        segment.size += written
        self.bytes += written

    def _own_owner(self) -> _Owner:
        if self._own is None:
            self._own = _create_owner(self.root)
        return self._own

    # --- reading -----------------------------------------------------------------------

    def read(self, max_events: int, *, after: SpoolRead | None = None) -> SpoolRead | None:
        """Parse up to ``max_events`` lines from the head segment (nothing is consumed).

        With ``after``, the lines that follow that read instead (read ahead while it is
        being stored); such a read is only good while :meth:`is_next` says so.
        """
        while True:
            with self._lock:
                segment, offset = self._head_after(after) if after else self._head_offset()
                if segment is None:
                    return None
                if segment.fd is not None:
                    self._seal(segment)  # never read a file still being appended to
                lines, ends = _read_lines(segment.path, offset, max_events)
                if lines:
                    break
                if after is not None:
                    return None  # a torn tail: left for the plain read to drop
                # Only a torn tail (half a line from a crash, never counted) is left.
                segment.offset = segment.size
                self._drop_segment(segment)
        # Parsing needs no lock: only the reader touches a sealed segment's lines.
        batch = SpoolRead(segment, start=offset, ends=ends)
        for line in lines:
            seq, record = _parse(line, own=segment.owner.own)
            batch.seqs.append(seq)
            batch.records.append(record)
        return batch

    def is_next(self, batch: SpoolRead) -> bool:
        """True when ``batch`` starts exactly where the unreplayed lines start."""
        with self._lock:
            segment, offset = self._head_offset()
            return segment is batch.segment and offset == batch.start

    def _head_offset(self) -> tuple[_Segment | None, int]:
        segment = self._head()
        return segment, (segment.offset if segment is not None else 0)

    def _head_after(self, batch: SpoolRead) -> tuple[_Segment | None, int]:
        segment = batch.segment
        end = batch.ends[-1] if batch.ends else batch.start
        if end < segment.size:
            return segment, end
        try:
            index = self._segments.index(segment)
        except ValueError:
            return None, 0
        for later in list(self._segments)[index + 1:]:
            if later.offset < later.size:
                return later, later.offset
            if later.fd is not None:
                return None, 0  # the active segment, empty so far
        return None, 0

    def _head(self) -> _Segment | None:
        while self._segments:
            head = self._segments[0]
            if head.offset < head.size:
                return head
            if head.fd is not None:
                return None  # the active segment, empty so far
            self._drop_segment(head)
        return None

    def commit(self, batch: SpoolRead, count: int) -> int:
        """Mark the first ``count`` lines of ``batch`` replayed; returns bytes freed on disk."""
        with self._lock:
            segment = batch.segment
            if count:
                segment.offset = batch.ends[count - 1]
            if segment.offset < segment.size or segment.fd is not None:
                return 0
            return self._drop_segment(segment)

    def _drop_segment(self, segment: _Segment) -> int:
        with contextlib.suppress(ValueError):
            self._segments.remove(segment)
        with contextlib.suppress(OSError):
            segment.path.unlink()
        self.bytes -= segment.size
        owner = segment.owner
        owner.segments -= 1
        if not owner.own and owner.segments <= 0:
            self._remove_owner(owner)
        return segment.size

    # --- lifecycle -----------------------------------------------------------------------

    def close(self) -> None:
        """Seal the active segment and release locks; an empty own directory is removed."""
        with self._lock:
            for segment in list(self._segments):
                self._seal(segment)
                if segment.offset >= segment.size:
                    self._drop_segment(segment)
                elif segment.offset > 0:
                    _drop_replayed_lines(segment)
            owners = list(self._adopted.values()) + ([self._own] if self._own else [])
            for owner in owners:
                if owner.segments <= 0:
                    self._remove_owner(owner)
                else:
                    _close_fd(owner.fd)  # releases the lock: the next writer adopts the rest
            self._adopted.clear()
            self._own = None

    def abandon(self) -> None:
        """In a forked child: let go of inherited descriptors without unlocking the parent's."""
        # flock locks belong to the open file description shared with the parent:
        # closing our copy keeps the parent's lock; LOCK_UN would release it.
        for segment in self._segments:
            if segment.fd is not None:
                _close_fd(segment.fd)
                segment.fd = None
        for owner in [*self._adopted.values(), *([self._own] if self._own else [])]:
            _close_fd(owner.fd)
        self._segments.clear()
        self._adopted.clear()
        self._own = None

    def _seal(self, segment: _Segment) -> None:
        if segment.fd is not None:
            _close_fd(segment.fd)
            segment.fd = None

    def _remove_owner(self, owner: _Owner) -> None:
        with contextlib.suppress(OSError):
            (owner.path / _LOCK_NAME).unlink()
        with contextlib.suppress(OSError):
            owner.path.rmdir()
        _close_fd(owner.fd)
        self._adopted.pop(owner.path.name, None)
        if owner is self._own:
            self._own = None


def _drop_replayed_lines(segment: _Segment) -> None:
    """Rewrite a partly replayed segment to the lines not yet stored or dead-lettered,
    so the next writer does not replay those again (the new file replaces the old in
    one rename; were it to fail, the next writer replays the whole segment, as before).
    """
    tmp = segment.path.with_name(f"{_TMP_PREFIX}{segment.path.stem}.part")
    try:
        with open(segment.path, "rb") as source, open(tmp, "wb") as target:
            source.seek(segment.offset)
            shutil.copyfileobj(source, target)
        os.replace(tmp, segment.path)
    except OSError as exc:
        logger.warning("cannot trim the replayed lines off spool segment %s: %s",
                       segment.path, exc)
        with contextlib.suppress(OSError):
            tmp.unlink()


def _parse(line: bytes, *, own: bool) -> tuple[int | None, AnyRecord | None]:
    """(seq, record) of a line; a flat record stays flat (the SQL store inserts its rows
    as they are, without validating them into models again)."""
    seq_text, _, payload = line.partition(b" ")
    try:
        seq = int(seq_text) if own else None
        return seq, read_record(payload)
    except ValueError:  # pydantic's ValidationError included
        return None, None


def _read_lines(path: Path, offset: int, max_events: int) -> tuple[list[bytes], list[int]]:
    """Complete lines from ``offset`` on, and the file offset after each."""
    lines: list[bytes] = []
    ends: list[int] = []
    position = offset
    with open(path, "rb") as handle:
        handle.seek(offset)
        for line in handle:
            if not line.endswith(b"\n"):
                break  # half a line left by a crash: never counted, skip it
            position += len(line)
            lines.append(line)
            ends.append(position)
            if len(lines) >= max_events:
                break
    return lines, ends


def _segment_name(number: int) -> str:
    return f"{number:020d}{_SUFFIX}"


def _count_lines(path: Path) -> tuple[int, int]:
    size = lines = 0
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            size += len(block)
            lines += block.count(b"\n")
    return size, lines


def _create_owner(root: Path) -> _Owner:
    """Create and lock this writer's directory; it appears under its final name locked."""
    root.mkdir(parents=True, exist_ok=True)
    name = f"{os.getpid()}-{secrets.token_hex(4)}"
    tmp = root / f"{_TMP_PREFIX}{name}"
    tmp.mkdir()
    fd = os.open(tmp / _LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    final = root / name
    os.rename(tmp, final)
    return _Owner(final, fd, own=True)


def _try_lock(lock_path: Path) -> int | None:
    try:
        fd = os.open(lock_path, os.O_RDWR)
    except OSError:
        return None  # no lock file: not a spool directory, or being removed
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        _close_fd(fd)
        return None  # a live process owns it
    return fd


def _open_append(path: Path) -> int:
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)


def _close_fd(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)
