"""What the node sets in its interpreter once it is ready: the start's heap frozen out of the
collector's sight, and a short switch interval (a thread running Python hands the lock to the
event loop within 1 ms, not Python's 5)."""

from __future__ import annotations

import gc
import sys

from agent_sre_daemon.node import SWITCH_INTERVAL_S, freeze_startup_heap, hand_over_sooner


def test_the_node_hands_the_interpreter_over_within_a_millisecond() -> None:
    before = sys.getswitchinterval()
    try:
        sys.setswitchinterval(0.005)
        hand_over_sooner()
        assert sys.getswitchinterval() == SWITCH_INTERVAL_S == 0.001
    finally:
        sys.setswitchinterval(before)


def test_what_the_start_built_is_frozen() -> None:
    try:
        kept = [object() for _ in range(10)], {"a": [1]}
        freeze_startup_heap()
        assert gc.get_freeze_count() > 0
        assert not any(o is kept for o in gc.get_objects())  # out of the collector's sight
    finally:
        gc.unfreeze()
