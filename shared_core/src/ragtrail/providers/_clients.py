"""What a provider client sent beyond the canonical call, so ``ragtrail replay`` gives
the body that client sent, as JSON, and not only one the provider accepts.

Two things differ between clients of one provider:

- **Unmodelled wire parameters.** A call may pass parameters ragtrail has no field for
  (``parallel_tool_calls``, ``service_tier``, ``user``, ``metadata``...). They are kept
  in the call's provider specifics under :data:`REQUEST_EXTRA` (plain JSON values
  only; secrets and the SDK's transport options such as ``extra_headers`` left out, and
  messages, tools and ``tool_choice``, stored elsewhere) and replayed in the call's own
  provider format.
- **The client's request style** (:data:`REQUEST_STYLE`): how it writes the same
  conversation. LlamaIndex's Anthropic client always sends ``system`` (``""`` when
  there is no system message, system texts joined by one newline), writes text as text
  blocks (a tool result's too, without ``is_error``) and merges consecutive turns of
  one role. Clients not listed in :data:`CLIENT_STYLES` write the provider's reference
  form (``langchain-openai``, ``langchain-anthropic``, LlamaIndex's OpenAI).

An adapter hands the module of the client's class and the raw parameter mappings
(:func:`client_request_fields`); the knowledge of who writes what stays here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._params import specific_params

__all__ = ["CLIENT_STYLES", "REQUEST_EXTRA", "REQUEST_STYLE", "REQUEST_STYLES", "RequestStyle",
           "client_request_fields", "request_extra", "request_style"]

#: Provider-specifics key: the wire parameters a call sent that ragtrail does not model.
REQUEST_EXTRA = "request_extra"
#: Provider-specifics key: the name of the client's request style (a key of
#: :data:`REQUEST_STYLES`), only for a client that writes requests its own way.
REQUEST_STYLE = "request_style"

#: Parameters never kept as extras: stored in fields of their own, streaming, or the
#: SDK's transport options (which may carry credentials: headers, URLs, clients).
_NOT_EXTRA = frozenset({"tool_choice", "stream", "stream_options", "system", "prompt",
                        "timeout", "max_retries", "api_base", "base_url", "api_version",
                        "organization", "default_headers", "default_query", "http_client",
                        "headers"})
#: Prefix of the SDKs' per-request transport options (extra_headers, extra_query, ...).
_TRANSPORT_PREFIX = "extra_"
_MAX_EXTRA_DEPTH = 6


@dataclass(frozen=True)
class RequestStyle:
    """How a client writes a conversation where clients differ (Anthropic messages)."""

    #: ``system`` is sent even when there is no system message (as ``""``).
    system_always: bool = False
    #: What joins the texts of several system messages into ``system``.
    system_separator: str = "\n\n"
    #: Text content is sent as ``[{"type": "text", "text": ...}]`` (no block when empty).
    text_blocks: bool = False
    #: A tool result carries ``is_error``.
    tool_result_is_error: bool = True
    #: Consecutive turns of one role are merged into one turn.
    merge_turns: bool = False


#: Request styles by name.
REQUEST_STYLES: dict[str, RequestStyle] = {
    "llamaindex-anthropic": RequestStyle(system_always=True, system_separator="\n",
                                         text_blocks=True, tool_result_is_error=False,
                                         merge_turns=True),
}
#: Client packages (the module prefix of the client's class) -> their request style.
CLIENT_STYLES: dict[str, str] = {"llama_index.llms.anthropic": "llamaindex-anthropic"}


def request_style(name: Any) -> RequestStyle:
    """The style named ``name``; the reference style for None or an unknown name."""
    return REQUEST_STYLES.get(name, RequestStyle()) if isinstance(name, str) else RequestStyle()


def _plain(value: Any, depth: int = 0) -> bool:
    if value is None or isinstance(value, (str, bool, int, float)):
        return True
    if depth >= _MAX_EXTRA_DEPTH:
        return False
    if isinstance(value, Mapping):
        return all(isinstance(k, str) and _plain(v, depth + 1) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return all(_plain(v, depth + 1) for v in value)
    return False


def request_extra(*sources: Mapping[str, Any]) -> dict[str, Any] | None:
    """The unmodelled wire parameters among ``sources`` (later sources win, as a client
    merges its defaults with a call's own parameters), plain JSON values only; None when
    there are none."""
    merged: dict[str, Any] = {}
    for source in sources:
        merged.update(source)
    extra = specific_params(merged) or {}
    kept = {k: (list(v) if isinstance(v, tuple) else v) for k, v in extra.items()
            if k not in _NOT_EXTRA and not k.startswith(("_", _TRANSPORT_PREFIX))
            and _plain(v)}
    return kept or None


def client_request_fields(client_module: str | None,
                          *sources: Mapping[str, Any]) -> dict[str, Any]:
    """Provider specifics of a call made by the client whose class lives in
    ``client_module``, given its raw parameter mappings (defaults first, the call's own
    last): :data:`REQUEST_EXTRA` and :data:`REQUEST_STYLE`, each only when there is one."""
    fields: dict[str, Any] = {}
    extra = request_extra(*sources)
    if extra:
        fields[REQUEST_EXTRA] = extra
    module = client_module or ""
    style = next((name for prefix, name in CLIENT_STYLES.items()
                  if module == prefix or module.startswith(prefix + ".")), None)
    if style is not None:
        fields[REQUEST_STYLE] = style
    return fields
