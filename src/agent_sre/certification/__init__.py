"""Reliability tiers per agent and version, from evidence (see docs/certification.md)."""
