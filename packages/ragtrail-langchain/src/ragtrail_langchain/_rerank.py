"""``mark_reranker``: declare a runnable or document compressor a reranker explicitly."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManager, CallbackManager, Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document
from langchain_core.runnables import Runnable, RunnableLambda

from ._names import KIND_KEY, RERANKER_MARK

__all__ = ["mark_reranker"]

_MARK = {KIND_KEY: RERANKER_MARK}


def mark_reranker(step: Any, *, name: str | None = None) -> Any:
    """Return ``step`` marked so ragtrail records its run as a ``reranker``.

    - A Runnable (or a plain function, wrapped in a ``RunnableLambda``) gets the mark in
      its run metadata; its input documents (a list, or the first list in a dict) and
      its output list are linked at stage ``reranked`` with their input positions.
    - A ``BaseDocumentCompressor`` (a cross-encoder or Cohere-style reranker) is
      wrapped in a compressor that reports each ``compress_documents`` call as a
      reranker run, since LangChain emits no callback for compressors. Use the result
      wherever the compressor went (e.g. ``ContextualCompressionRetriever``).

    ``name`` sets the run name.
    """
    if isinstance(step, BaseDocumentCompressor):
        return _MarkedCompressor(base=step, run_name=name or type(step).__name__)
    if not isinstance(step, Runnable):
        if not callable(step):
            raise TypeError(f"mark_reranker needs a Runnable, a callable or a document "
                            f"compressor, got {type(step).__name__}")
        step = RunnableLambda(step, name=name)
    if name:
        return step.with_config(metadata=_MARK, run_name=name)
    return step.with_config(metadata=_MARK)


class _MarkedCompressor(BaseDocumentCompressor):
    """A document compressor whose calls appear as reranker runs."""

    base: BaseDocumentCompressor
    run_name: str

    def compress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        """Run the wrapped compressor inside a reranker run."""
        manager = CallbackManager.configure(inheritable_callbacks=callbacks,
                                            local_metadata=_MARK)
        run = manager.on_chain_start(None, {"query": query, "documents": list(documents)},
                                     name=self.run_name)
        try:
            result = self.base.compress_documents(documents, query, callbacks=run.get_child())
        except BaseException as exc:
            run.on_chain_error(exc)
            raise
        run.on_chain_end(list(result))
        return result

    async def acompress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        """Async variant of :meth:`compress_documents`."""
        manager = AsyncCallbackManager.configure(inheritable_callbacks=callbacks,
                                                 local_metadata=_MARK)
        run = await manager.on_chain_start(None, {"query": query, "documents": list(documents)},
                                           name=self.run_name)
        try:
            result = await self.base.acompress_documents(documents, query,
                                                         callbacks=run.get_child())
        except BaseException as exc:
            await run.on_chain_error(exc)
            raise
        await run.on_chain_end(list(result))
        return result

