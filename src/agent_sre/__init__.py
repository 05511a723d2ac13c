"""agent-sre: the reliability engines for AI agents (pure, synchronous, no I/O).

The daemon in ``agent_sre_daemon`` feeds these engines; they never import it.
"""

__version__ = "0.1.0"
