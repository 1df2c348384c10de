"""Imported at interpreter start-up by ``ragtrail_langchain.pth``; costs nothing unless
``RAGTRAIL_TRACING`` is set, in which case it imports ``ragtrail_langchain`` so every
LangChain run is recorded without any change to the application's code.
"""

import contextlib
import os

if os.environ.get("RAGTRAIL_TRACING", "") not in ("", "0", "false", "False"):
    with contextlib.suppress(Exception):  # never break interpreter start-up
        import ragtrail_langchain  # noqa: F401 - registers LangChain's configure hook
