"""The integration fixtures (the real daemon, the stand-in provider, an OTLP upstream)."""

from tests.integration.conftest import make_daemon, provider_url, upstream  # noqa: F401
