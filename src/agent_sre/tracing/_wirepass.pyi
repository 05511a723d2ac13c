from agent_sre.tracing.conventions import AgentSpanKind
from agent_sre.tracing.view import AttrValue

ValidSpan = tuple[
    AgentSpanKind | None,  # None: classify() decides (a case mapping only Python has)
    bool,  # explicit kind
    dict[str, AttrValue],
    bytes,  # trace_id
    bytes,  # span_id
    str,  # name
    int,  # start_ns
    int,  # end_ns
    bool,  # is_error
    bool,  # a wanted value was ignored (not finite)
    int,  # offset of the span's bytes in the body
    int,  # length of the span's bytes
]
BadSpan = tuple[bytes, bytes, bytes, str]  # trace_id, span_id, parent_span_id, name

def scan(
    body: bytes,
    span_keys: tuple[str, ...],
    resource_keys: tuple[str, ...],
    kinds: tuple[object, ...],
) -> tuple[list[ValidSpan | BadSpan], int]: ...
def build(
    body: bytes,
    edits: list[object],
    kind_key: str,
    node_attrs: tuple[tuple[str, str], ...],
    override: str,
) -> bytes: ...
