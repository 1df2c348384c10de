"""ragtrail handler for LlamaIndex."""
