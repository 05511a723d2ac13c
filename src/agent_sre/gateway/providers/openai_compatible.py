"""``api: openai_compatible``: a server speaking OpenAI's API (vLLM, Ollama, LM Studio,
llama.cpp...): requests, usage and streams read as OpenAI's.

Such a server has no price list: its models cost what the route's ``prices`` say, and zero
when they say nothing (``"*"`` prices every model not listed), so budgets count tokens
and calls but not money unless told.
"""

from __future__ import annotations

from agent_sre.gateway.providers.openai import OpenAI


class OpenAICompatible(OpenAI):
    api = "openai_compatible"
    provider = "openai_compatible"
    price_id = ""


PROVIDER = OpenAICompatible()
