"""Progressive delivery in the daemon: the rollout stage of every proxied call, the steps
advanced on the node clock, state in ``state_dir``, the admin API, metrics and signals."""
