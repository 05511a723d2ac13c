"""Exit statuses of every ``agent-sre`` command, defined once."""

OK = 0
"""Success."""
FAILURE = 1
"""The command ran and the answer is no: the daemon is unreachable, the admin API answered
with an error, or a check failed (``slo check``)."""
USAGE = 2
"""Bad usage or bad configuration (argparse exits with 2 as well)."""
BROKEN_PIPE = 141
"""Whatever read the output went away before it ended (``agent-sre ... | head``): the command
stops quietly with the status of a process SIGPIPE ended (128 + 13), as ``cat`` would."""
