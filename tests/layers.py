"""The test layers: one directory each under tests/, each also a registered marker.

Kept apart from ``conftest.py`` so tests can import it: several directories have a
``conftest.py``, and which one ``import conftest`` finds depends on what was collected.
"""

LAYERS = ("core", "store", "writer", "reliability", "providers", "langchain", "llamaindex",
          "evals", "quality", "cli", "web", "export", "governance", "e2e", "interop")
