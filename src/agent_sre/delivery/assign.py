"""Sticky assignment: the same task always gets the same variant.

The key (the task id, else the trace id) is hashed with the rollout's name into one of
10,000 buckets; the candidate takes the buckets below its weight. Raising the weight only
adds buckets, so a task already on the candidate stays there.
"""

from __future__ import annotations

import hashlib

BUCKETS = 10_000
BASELINE = "baseline"
CANDIDATE = "candidate"


def bucket(rollout: str, key: str) -> int:
    """The bucket of ``key`` in ``rollout`` (0 to 9,999), the same on every node."""
    digest = hashlib.blake2b(f"{rollout}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def variant(rollout: str, key: str, weight: float) -> str:
    """``candidate`` for a ``weight`` percent share of keys, else ``baseline``."""
    if weight <= 0:
        return BASELINE
    if weight >= 100:
        return CANDIDATE
    return CANDIDATE if bucket(rollout, key) < weight * BUCKETS / 100 else BASELINE
