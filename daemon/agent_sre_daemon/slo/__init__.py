"""The SLO engine in the daemon: observation, evaluation timer, persistence, API."""
