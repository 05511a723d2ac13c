"""The proxy's own stages, one module each, in the order a call enters them:
record (span and metrics, written last on the way back) -> identity -> admission ->
routing -> settle (usage and cost, first on the way back) -> upstream (the ``forward``
slot). Other components add theirs (``faults``, ``capture``, rollout routing) through
``NodeContext.stages``."""
