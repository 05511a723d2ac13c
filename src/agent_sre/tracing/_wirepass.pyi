from agent_sre.tracing.view import AgentSpan

BadSpan = tuple[bytes, bytes, bytes, str]  # trace_id, span_id, parent_span_id, name

def scan(
    body: bytes,
    span_keys: tuple[str, ...],
    resource_keys: tuple[str, ...],
    kinds: tuple[object, ...],
    view_type: type[AgentSpan],
    max_magnitude: float,
) -> tuple[list[AgentSpan | BadSpan], bytes, int]: ...
def build(
    body: bytes,
    edits: list[object],
    kind_key: str,
    node_attrs: tuple[tuple[str, str], ...],
    override: str,
) -> bytes: ...
