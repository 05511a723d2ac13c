"""The adversarial cases start the real daemon the way the integration tests do."""

from tests.integration.conftest import make_daemon, provider_url, upstream

__all__ = ["make_daemon", "provider_url", "upstream"]
