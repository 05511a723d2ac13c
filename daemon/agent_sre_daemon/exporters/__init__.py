"""Upstream OTLP forwarding and the Prometheus endpoint."""
