"""Spool replay: records that waited on disk are written once the store is back.

The spool's other halves: :class:`~ragtrail.writer._spiller.Spiller` puts records on
it (overflow, failed batches, what is left at close), :class:`~ragtrail.writer._spool.Spool`
keeps them as JSON lines and adopts the spools of dead writers. The writer loop calls
:func:`replay_spool` with the next batch read back, oldest first.
"""

from __future__ import annotations

from collections.abc import Callable

from ._ledger import Ledger
from ._retry import Outcome
from ._seam import Batch
from ._spool import Spool, SpoolRead

__all__ = ["replay_spool"]

#: Writes a batch read from the spool (with retries and dead-lettering; see
#: :meth:`~ragtrail.writer._retry.RetryLayer.deliver`).
Deliver = Callable[[Batch, SpoolRead], Outcome]


def replay_spool(spool: Spool, batch: SpoolRead, deliver: Deliver, ledger: Ledger
                 ) -> SpoolRead | None:
    """Replay one batch read back from ``spool``: write its readable records, commit
    the lines that are done (stored, dead-lettered, or unreadable: counted as
    ``spool_corrupt``) and settle them in the ledger.

    Spooled records had their retries: an unexpected error now dead-letters them
    (``deliver`` is called for their last chance). Returns ``batch`` when none of its
    lines was consumed (the store failed at once), so it is written again without
    being parsed again; else None.
    """
    readable = [i for i, record in enumerate(batch.records) if record is not None]
    outcome = deliver(batch.prepared or [r for r in batch.records if r is not None], batch)
    lines = len(batch.records) if outcome.done == len(readable) else readable[outcome.done]
    if lines == 0:
        return batch
    corrupt = sum(1 for record in batch.records[:lines] if record is None)
    seqs = [seq for seq in batch.seqs[:lines] if seq is not None]
    if spool.commit(batch, lines):
        ledger.spool_full = False  # a segment was deleted: room again
    ledger.settle_spool(seqs, stored=outcome.stored, dead=outcome.dead, corrupt=corrupt)
    ledger.sync_spool_bytes(spool.bytes)
    return None
