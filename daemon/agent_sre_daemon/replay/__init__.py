"""The replay engine's shell: the trace buffer, call capture, replay sessions."""
