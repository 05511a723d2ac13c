"""The certification engine's runtime: evidence, verdicts, tier signals, API."""
