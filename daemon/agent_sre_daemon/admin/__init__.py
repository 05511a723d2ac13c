"""The admin API (default 127.0.0.1:8791): JSON under ``/v1/...``."""
