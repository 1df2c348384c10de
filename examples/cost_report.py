"""What did this app cost per model, per day? Pricing with overrides, unknown prices apart.

    python examples/cost_report.py [SQLITE_FILE_OR_URL]

Records LangChain runs with a known model (priced from genai-prices), a self-hosted
model priced through an override, and a model nobody knows (counted as unpriced, never
as $0), then prints usage grouped by model and by day.
"""

from __future__ import annotations

import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import langchain_rag

from ragtrail import Trail
from ragtrail.report import to_text, usage_table
from ragtrail_langchain import RagtrailCallbackHandler

# Per million tokens, like a negotiated or self-hosted price list.
PRICES = {"my-llama-70b": {"input": "0.20", "output": "0.60"}}


def main(db_url: str | None = None) -> dict[str, object]:
    """Record runs on three models and print the usage report; returns rows (for tests)."""
    with Trail(db_url, app_name="cost-demo", prices=PRICES) as trail:
        handler = RagtrailCallbackHandler(trail)
        for model in ("gpt-4o-mini", "my-llama-70b", "mystery-model"):
            chain = langchain_rag.build_chain(model_name=model)
            chain.invoke(langchain_rag.QUESTION, config={"callbacks": [handler]})
        trail.flush()
        week = datetime.now(timezone.utc) - timedelta(days=7)
        by_model = trail.usage(["model"], since=week)
        print(to_text(usage_table(by_model, ["model"])))
        print(to_text(usage_table(trail.usage(["day", "app_name"], since=week),
                                  ["day", "app_name"])))
        return {row.group["model"]: (row.total_cost, row.unpriced_calls) for row in by_model}


if __name__ == "__main__":
    arg = sys.argv[1] if len(sys.argv) > 1 else None
    main(arg if arg is None or "://" in arg else f"sqlite:///{arg}")
