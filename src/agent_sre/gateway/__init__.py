"""The proxy's decisions, pure: how a proxied call is read and what it costs.

- :mod:`.plan`: a request read once into a :class:`~.plan.CallPlan`; what the response told
  (:class:`~.plan.ResponseFacts`).
- :mod:`.identity`: who makes the call and the trace it belongs to, from its headers.
- :mod:`.providers`: all knowledge of one API shape (OpenAI, Anthropic, MCP, plain tool HTTP)
  in one module each, and the one list of shapes (``PROVIDERS``).
- :mod:`.sse`: the server-sent event tap that reads usage as a stream passes.
- :mod:`.cost`: the worst case a call may cost (for the reservation) and what it did cost.

No I/O, no clock: the daemon's proxy stages call these with the bytes and the time.
"""
