"""Span kinds, attribute conventions, the AgentSpan view and enrichment."""
