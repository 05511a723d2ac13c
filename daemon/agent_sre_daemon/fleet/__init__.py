"""The fleet engine in the daemon: publishes this node's summary, reads the others'."""
