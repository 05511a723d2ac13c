"""Incidents: signals correlated into a few well-formed incidents, their lifecycle,
automatic responses, circuit breakers and postmortems (pure: time comes in as a value)."""
