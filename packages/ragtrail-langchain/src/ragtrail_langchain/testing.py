"""Named hooks into the LangChain adapter's internals, for ragtrail's own tests only.

No stability promise: names come and go with the code they expose, in any release.
Applications test their instrumentation through :mod:`ragtrail.testing` instead.
"""

from __future__ import annotations

# The declared extractor tuples: the extractor tests make each entry fail in turn.
from . import _extractors as extractors

__all__ = ["extractors"]
