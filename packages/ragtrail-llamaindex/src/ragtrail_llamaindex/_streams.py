"""Streaming answers: keep the LLM call that produces them inside their trace.

A streaming query returns a ``StreamingResponse`` whose generator calls the LLM only
when the caller iterates it, after every span of the query has exited. LlamaIndex's
dispatcher then reports that LLM span with no parent, so it would be a trace of its
own and the retrieved nodes could not be linked to its prompt. The wrapper below runs
each step of the generator with the span that returned it marked active again, so
the dispatcher (and every span handler, ours included) parents the LLM span
correctly; it also tells the engine when the stream ends, which is when the runs
that returned it really end.
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any

from llama_index.core.instrumentation.span import active_span_id

__all__ = ["StreamDone", "is_lazy_stream", "wrap_response_gen"]

#: Called once when a wrapped stream ends: (text produced, error or None).
StreamDone = Callable[[str, "BaseException | None"], None]

_MAX_TEXT_CHARS = 1_000_000
# Wrapper generator -> the callbacks waiting on it (a query and its synthesizer
# return the same response object; both wait on the one wrapper).
_waiters: weakref.WeakKeyDictionary[Any, list[StreamDone]] = weakref.WeakKeyDictionary()


def is_lazy_stream(result: Any) -> bool:
    """True for a response whose ``response_gen`` generator has not run yet."""
    gen = getattr(type(result), "__dataclass_fields__", {}).get("response_gen") and getattr(
        result, "response_gen", None
    )
    return isinstance(gen, (Generator, AsyncGenerator))


def wrap_response_gen(result: Any, span_id: str, done: StreamDone) -> None:
    """Make ``result.response_gen`` run under ``span_id`` and call ``done`` at its end."""
    gen = result.response_gen
    waiting = _waiters.get(gen)
    if waiting is not None:
        waiting.append(done)
        return
    callbacks = [done]
    wrapper: Any
    if isinstance(gen, AsyncGenerator):
        wrapper = _async_wrapper(gen, span_id, callbacks)
    else:
        wrapper = _sync_wrapper(gen, span_id, callbacks)
    _waiters[wrapper] = callbacks
    result.response_gen = wrapper


class _Tracker:
    """What a wrapped stream produced so far, and who waits for its end."""

    def __init__(self, callbacks: list[StreamDone]) -> None:
        self.callbacks = callbacks
        self.parts: list[str] = []
        self.size = 0
        self.error: BaseException | None = None

    def add(self, item: Any) -> None:
        text = item if isinstance(item, str) else getattr(item, "delta", None)
        if isinstance(text, str) and self.size < _MAX_TEXT_CHARS:
            self.parts.append(text)
            self.size += len(text)

    def finish(self) -> None:
        text = "".join(self.parts)
        for callback in list(self.callbacks):
            callback(text, self.error)


def _sync_wrapper(gen: Generator[Any, None, None], span_id: str,
                  callbacks: list[StreamDone]) -> Generator[Any, None, None]:
    tracker = _Tracker(callbacks)
    try:
        while True:
            token = active_span_id.set(span_id)
            try:
                item = next(gen)
            except StopIteration:
                return
            finally:
                active_span_id.reset(token)
            tracker.add(item)
            yield item
    except BaseException as exc:  # GeneratorExit included: the caller stopped early
        tracker.error = exc
        if isinstance(exc, GeneratorExit):
            gen.close()
        raise
    finally:
        tracker.finish()


async def _async_wrapper(gen: AsyncGenerator[Any, None], span_id: str,
                         callbacks: list[StreamDone]) -> AsyncGenerator[Any, None]:
    tracker = _Tracker(callbacks)
    try:
        while True:
            token = active_span_id.set(span_id)
            try:
                item = await gen.__anext__()
            except StopAsyncIteration:
                return
            finally:
                active_span_id.reset(token)
            tracker.add(item)
            yield item
    except BaseException as exc:  # GeneratorExit included: the caller stopped early
        tracker.error = exc
        if isinstance(exc, GeneratorExit):
            await gen.aclose()
        raise
    finally:
        tracker.finish()
