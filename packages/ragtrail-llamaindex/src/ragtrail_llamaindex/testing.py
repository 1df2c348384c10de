"""Named hooks into the LlamaIndex adapter's internals, for ragtrail's own tests only.

No stability promise: names come and go with the code they expose, in any release.
Applications test their instrumentation through :mod:`ragtrail.testing` instead.
"""

from __future__ import annotations

# The callback form's once-per-process note: tests reset its flag and match its text.
from . import _coverage as callback_coverage

# The declared extractor tuples: the extractor tests make each entry fail in turn.
from . import _extractors as extractors

# Span classification: the README's span table is checked against the methods kept, and
# LlamaIndex's span ids against the names they fold to.
from ._roles import _bases as span_role_bases
from ._roles import span_name

__all__ = ["callback_coverage", "extractors", "span_name", "span_role_bases"]
