"""Adversarial cases: what a careless or hostile client, upstream or file sends, against the
one gate of each kind of input (numbers, bodies, the event loop). The real daemon is started
as a process, as in ``tests/integration``, whose fixtures these tests share."""

from __future__ import annotations

from tests.integration.conftest import make_daemon, provider_url, upstream

__all__ = ["make_daemon", "provider_url", "upstream"]
