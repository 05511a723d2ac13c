"""Chaos experiments: declared faults injected into real proxied calls, targeted by share
and probability, stopped by abort rules, summed up in a resilience score.

Pure and synchronous like every engine: randomness comes in as a ``draw`` function, time as
a number; the daemon's chaos runtime does the waiting, the I/O and the injecting.
"""
