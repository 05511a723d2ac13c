"""Adversarial cases: what a careless or hostile client, upstream or file sends, against the
one gate of each kind of input. The real daemon is started as a process, as in
``tests/integration``, whose fixtures (the real daemon, the stand-in provider, an OTLP
upstream) these tests share."""

from tests.integration.conftest import make_daemon, provider_url, upstream  # noqa: F401
