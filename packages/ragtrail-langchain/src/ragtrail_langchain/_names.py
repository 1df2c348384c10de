"""Names the LangChain adapter reads from or writes into LangChain data, in one place."""

from __future__ import annotations

import asyncio
import os

from ragtrail.schemas import RunKind

#: Environment variable that turns tracing on for every LangChain run (no code change).
ENV_TRACING = "RAGTRAIL_TRACING"

#: Run-metadata key :func:`ragtrail_langchain.mark_reranker` sets; value :data:`RERANKER_MARK`.
KIND_KEY = "ragtrail_kind"
RERANKER_MARK = "reranker"

#: Metadata keys retrievers and compressors commonly put a score under, in priority order.
#: ``_distance`` (LanceDB) is a distance, lower is closer; it is stored as reported.
SCORE_KEYS = ("relevance_score", "score", "similarity", "_distance")

#: Tag LangChain's ``RunnableRetry`` puts on each attempt after the first.
RETRY_TAG_PREFIX = "retry:attempt:"

#: Metadata keys LangChain chat models report provider and model under.
LS_PROVIDER = "ls_provider"
LS_MODEL_NAME = "ls_model_name"

#: LangChain ``run_type`` values -> ragtrail kinds (anything else is a chain).
RUN_TYPE_KINDS = {
    "prompt": RunKind.PROMPT,
    "parser": RunKind.PARSER,
    "tool": RunKind.TOOL,
    "retriever": RunKind.RETRIEVER,
    "llm": RunKind.LLM,
    "chat_model": RunKind.LLM,
    "embedding": RunKind.EMBEDDING,
    "chain": RunKind.CHAIN,
}

#: Exceptions that mean "the consumer stopped", not "the step failed".
CANCEL_ERRORS: tuple[type[BaseException], ...] = (
    GeneratorExit,
    asyncio.CancelledError,
    KeyboardInterrupt,
)


def env_flag(name: str) -> bool:
    """True when an environment variable is set to something other than empty/0/false.

    Same rule as LangChain's ``env_var_is_set``, so both read the switch alike.
    """
    return os.environ.get(name, "") not in ("", "0", "false", "False")

#: Metadata LangGraph sets on every run of a graph: the thread (``configurable.thread_id``)
#: and the integration that built the runnable.
LG_THREAD_ID = "thread_id"
LS_INTEGRATION = "ls_integration"
#: ``ls_integration`` of the graph built by LangChain v1's ``create_agent``.
CREATE_AGENT_INTEGRATION = "langchain_create_agent"
#: LangGraph's prebuilt ``create_react_agent``: its model node, and the function the node
#: runs (sync and async), which identify the graph holding them as an agent.
REACT_AGENT_NODE = "agent"
REACT_AGENT_CALLS = frozenset({"call_model", "acall_model"})

#: Name of the reranker run inferred between a retriever and its child retriever.
INFERRED_RERANKER_NAME = "InferredReranker"
