"""Exit statuses of every ``agent-sre`` command, defined once."""

OK = 0
"""Success."""
FAILURE = 1
"""The command ran and the answer is no: the daemon is unreachable, the admin API answered
with an error, or a check failed (``slo check``)."""
USAGE = 2
"""Bad usage or bad configuration (argparse exits with 2 as well)."""
