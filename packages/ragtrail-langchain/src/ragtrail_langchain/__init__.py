"""ragtrail handler for LangChain."""
