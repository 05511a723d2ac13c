"""Per-call faults asked by a request header (as Envoy's fault headers), for test suites.

``x-agent-sre-fault: <type>[; key=value ...]`` with the keys of a fault in the
configuration, e.g. ``error; status=529``, ``latency; delay=2s``, ``rate_limit;
retry_after=1s``. Honoured only with ``chaos.enabled`` and ``chaos.allow_header_faults``.
"""

from __future__ import annotations

from pydantic import ValidationError

from agent_sre.chaos.spec import FaultSpec

FAULT_HEADER = "x-agent-sre-fault"
HEADER_EXPERIMENT = "header"
"""The experiment name faulted calls carry when a header asked for the fault."""


class HeaderFaultError(ValueError):
    """The header does not name a valid fault (the message says which part)."""


def parse_fault_header(value: str) -> FaultSpec:
    """The fault a header asks for.

    Raises:
        HeaderFaultError: naming the bad part.
    """
    kind, _, rest = value.partition(";")
    data: dict[str, object] = {"type": kind.strip()}
    for part in rest.split(";"):
        if not part.strip():
            continue
        key, sep, val = part.partition("=")
        if not sep:
            raise HeaderFaultError(f"{FAULT_HEADER}: {part.strip()!r} is not key=value")
        key = key.strip()
        if key in ("probability",):
            raise HeaderFaultError(f"{FAULT_HEADER}: {key} does not apply to one call")
        data[key] = val.strip()
    try:
        return FaultSpec.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in exc.errors()
        )
        raise HeaderFaultError(f"{FAULT_HEADER}: {problems}") from None
