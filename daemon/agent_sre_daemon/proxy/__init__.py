"""The LLM and tool reverse proxy with the cost guard inline (see docs/proxy.md)."""
