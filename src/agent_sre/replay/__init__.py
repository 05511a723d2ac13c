"""Replay: trace assembly and indexing, capture redaction, canonical requests, cassettes and
trace diffs — pure functions over bytes and plain values (the shell stores and serves)."""
