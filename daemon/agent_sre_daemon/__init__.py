"""agent-sre daemon: the asyncio shell (servers, stores, exporters) around the engines."""
