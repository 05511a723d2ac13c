"""Durable stores: the SQLite queue and ledgers."""
