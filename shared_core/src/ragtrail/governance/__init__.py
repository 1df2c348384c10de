"""Governance: retention, erasure on request, an audit of reads, least-privilege roles.

- :mod:`.retention`: ``purge`` by age, per app and tenant, and policy files for cron.
- :mod:`.erasure`: ``erase`` every trace of a user or session, with a receipt.
- :mod:`.audit`: who read which trace through the web view and its API.
- :mod:`.roles`: PostgreSQL roles (writer, reader, admin) and row-level security.
"""

from __future__ import annotations

from .erasure import ErasureReceipt, erase, erasure_receipts
from .retention import (
    PurgeResult,
    RetentionPolicy,
    RetentionRule,
    apply_policy,
    load_policy,
    purge,
)

__all__ = [
    "ErasureReceipt",
    "PurgeResult",
    "RetentionPolicy",
    "RetentionRule",
    "apply_policy",
    "erase",
    "erasure_receipts",
    "load_policy",
    "purge",
]
