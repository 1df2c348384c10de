"""Keys the store indexes (run ids, document ids, application context), kept bounded.

PostgreSQL's btree refuses an index entry over 2,704 bytes, so a session id that is a
long token, a document id that is a long URL or an application name pasted by mistake
would make the database refuse the whole record. Such a value is stored in a bounded
form instead: its first characters, then ``~sha256:`` and the digest of the whole
value, so distinct values stay distinct and the same value always maps to the same
key. Queries given the full value look it up through the same function.
"""

from __future__ import annotations

import hashlib

__all__ = ["MAX_KEY_CHARS", "bounded_key"]

#: Longest key stored as it is (in UTF-8 at most 4 bytes each: well under 2,704).
MAX_KEY_CHARS = 512
_KEPT = MAX_KEY_CHARS - 8 - 64 - 40  # prefix kept before "~sha256:" and the digest


def bounded_key(value: str) -> str:
    """``value`` itself up to :data:`MAX_KEY_CHARS`; else its prefix and its digest."""
    if len(value) <= MAX_KEY_CHARS:
        return value
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{value[:_KEPT]}~sha256:{digest}"
