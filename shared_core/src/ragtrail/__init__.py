"""ragtrail: a complete, queryable audit trail of LLM and RAG runs."""
