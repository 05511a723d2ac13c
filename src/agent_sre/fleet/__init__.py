"""The fleet: every daemon's compact summary, and one exact view across the nodes.

Pure: summaries in (as values or bytes), a view out; times come in as parameters.

- :mod:`.spec` — the ``fleet:`` configuration section.
- :mod:`.summary` — what one node publishes, its bounds and its compact encoding (the gate
  every summary read back from the shared store passes).
- :mod:`.agents` — the node's own registry of agents seen (a span observer feeds it).
- :mod:`.view` — the fleet view: node states from their age, SLO attainment summed exactly
  from the nodes' bucket counts, agents across nodes.
"""
