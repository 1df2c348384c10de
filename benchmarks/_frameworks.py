"""The workloads: the LCEL RAG chain and the LlamaIndex query engine the tests use.

They are imported from ``tests/lc_support.py`` and ``tests/li_support.py`` rather than
rebuilt here, so the benchmark measures exactly what the test suite checks (retriever,
reranking step, prompt, fake model reporting usage, parser) and cannot drift from it.
The benchmarks run from a checkout (``make bench``), where ``tests/`` is always present.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType

TESTS_DIR = Path(__file__).resolve().parent.parent / "tests"
QUESTION = "how does write ahead logging let readers continue in sqlite"


def support(name: str) -> ModuleType:
    """``lc_support`` or ``li_support`` from ``tests/``."""
    if str(TESTS_DIR) not in sys.path:
        sys.path.insert(0, str(TESTS_DIR))
    module = __import__(name)
    return module
