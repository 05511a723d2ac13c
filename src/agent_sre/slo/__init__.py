"""SLO specs, SLIs, bucketed windows, error budgets and burn rates."""
