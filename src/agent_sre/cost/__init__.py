"""Pricing, budgets, guard decisions and spend anomalies."""
