"""Agent span kinds and the attribute names agent-sre reads and writes.

Names are kept backward compatible once released: add, never rename.
"""

from __future__ import annotations

from enum import Enum


class AgentSpanKind(str, Enum):
    """What an agent span represents, carried in the ``agent.span.kind`` attribute."""

    AGENT_TASK = "AGENT_TASK"
    TOOL_CALL = "TOOL_CALL"
    LLM_INFERENCE = "LLM_INFERENCE"
    DELEGATION = "DELEGATION"
    POLICY_CHECK = "POLICY_CHECK"
    OTHER = "OTHER"
    """Not an agent span as far as any convention tells; never written to a span."""


# Agent attributes (the seed toolkit's conventions).
AGENT_SPAN_KIND = "agent.span.kind"
AGENT_DID = "agent.did"
AGENT_ID = "agent.id"
AGENT_VERSION = "agent.version"
AGENT_TRUST_SCORE = "agent.trust_score"
AGENT_TASK_ID = "agent.task.id"
AGENT_TASK_SUCCESS = "agent.task.success"
AGENT_TASK_COST_USD = "agent.task.cost_usd"
AGENT_DELEGATION_DEPTH = "agent.delegation.depth"
AGENT_DELEGATION_CALLER = "agent.delegation.caller"
"""DELEGATION spans: the agent handing work on (the proxy's A2A routes write it)."""
AGENT_DELEGATION_CALLEE = "agent.delegation.callee"
"""DELEGATION spans: the agent work is handed to."""
AGENT_DELEGATION_TASK_ID = "agent.delegation.task.id"
"""DELEGATION spans: the callee's task."""
AGENT_POLICY_DECISION = "agent.policy.decision"
AGENT_EVAL_HALLUCINATED = "agent.eval.hallucinated"

# OpenTelemetry GenAI semantic conventions (and the older names still in the wild).
GEN_AI_OPERATION_NAME = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME = "gen_ai.provider.name"
GEN_AI_SYSTEM = "gen_ai.system"
GEN_AI_REQUEST_MODEL = "gen_ai.request.model"
GEN_AI_RESPONSE_MODEL = "gen_ai.response.model"
GEN_AI_RESPONSE_ID = "gen_ai.response.id"
GEN_AI_USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
GEN_AI_USAGE_PROMPT_TOKENS = "gen_ai.usage.prompt_tokens"
GEN_AI_USAGE_COMPLETION_TOKENS = "gen_ai.usage.completion_tokens"
GEN_AI_AGENT_ID = "gen_ai.agent.id"
GEN_AI_AGENT_NAME = "gen_ai.agent.name"
GEN_AI_TOOL_NAME = "gen_ai.tool.name"
GEN_AI_TOOL_CALL_ID = "gen_ai.tool.call.id"
MCP_METHOD_NAME = "mcp.method.name"
"""MCP semantic conventions: the JSON-RPC method (``tools/call`` for a tool call)."""
MCP_TOOLS_CALL = "tools/call"

# OpenInference (Arize) and OpenLLMetry (Traceloop).
OPENINFERENCE_SPAN_KIND = "openinference.span.kind"
TRACELOOP_SPAN_KIND = "traceloop.span.kind"
LLM_MODEL_NAME = "llm.model_name"
LLM_TOKEN_COUNT_PROMPT = "llm.token_count.prompt"
LLM_TOKEN_COUNT_COMPLETION = "llm.token_count.completion"
TOOL_NAME = "tool.name"
"""OpenInference: the name of the tool a TOOL span called."""

MODEL_KEYS: tuple[str, ...] = (GEN_AI_REQUEST_MODEL, GEN_AI_RESPONSE_MODEL, LLM_MODEL_NAME)
"""Where a span names its model, by every convention."""
USAGE_KEYS: tuple[str, ...] = (
    GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_OUTPUT_TOKENS,
    GEN_AI_USAGE_PROMPT_TOKENS,
    GEN_AI_USAGE_COMPLETION_TOKENS,
    LLM_TOKEN_COUNT_PROMPT,
    LLM_TOKEN_COUNT_COMPLETION,
)
"""Where a span counts its tokens, by every convention."""

# Attributes the daemon adds (prefix ``agent_sre.``).
AGENT_SRE_NODE = "agent_sre.node"
AGENT_SRE_COST_USD = "agent_sre.cost_usd"
AGENT_SRE_CHAOS_FAULT = "agent_sre.chaos.fault"
AGENT_SRE_PROXY_ROUTE = "agent_sre.proxy.route"
AGENT_SRE_BUDGET_DECISION = "agent_sre.budget.decision"
ERROR_TYPE = "error.type"

# One call, one event (tracing/correlate.py): the second view of a call is marked.
AGENT_SRE_ROLE = "agent_sre.role"
"""Set on a span that is a second view of an LLM or tool call another span counts:
``gateway`` (the proxy's span, when the agent's own span is the event) or ``duplicate`` (an
agent's span of a call already counted). Spans carrying it are forwarded but never counted."""
ROLE_GATEWAY = "gateway"
ROLE_DUPLICATE = "duplicate"
AGENT_SRE_GATEWAY_COST_USD = "agent_sre.gateway.cost_usd"
"""The proxy's price of a call whose event span carries ``agent_sre.cost_usd`` (not summed)."""
AGENT_SRE_DUPLICATE_COST_USD = "agent_sre.duplicate.cost_usd"
AGENT_SRE_GATEWAY_SPAN_ID = "agent_sre.gateway.span_id"
"""On the event span: the proxy's span of the same call (hex)."""
AGENT_SRE_EVENT_SPAN_ID = "agent_sre.event.span_id"
"""On a ``gateway`` or ``duplicate`` span: the span that counts for the call (hex)."""
AGENT_SRE_EVENT_TRACE_ID = "agent_sre.event.trace_id"
AGENT_SRE_LINKED_BY = "agent_sre.linked_by"
"""How the two views were linked: ``response_id``, ``trace`` or ``fingerprint``."""
K8S_NODE_NAME = "k8s.node.name"
K8S_POD_NAME = "k8s.pod.name"

GEN_AI_OPERATION_KINDS: dict[str, AgentSpanKind] = {
    "invoke_agent": AgentSpanKind.AGENT_TASK,
    "create_agent": AgentSpanKind.AGENT_TASK,
    "invoke_workflow": AgentSpanKind.AGENT_TASK,
    "chat": AgentSpanKind.LLM_INFERENCE,
    "text_completion": AgentSpanKind.LLM_INFERENCE,
    "generate_content": AgentSpanKind.LLM_INFERENCE,
    "embeddings": AgentSpanKind.LLM_INFERENCE,
    "execute_tool": AgentSpanKind.TOOL_CALL,
}

OPENINFERENCE_KINDS: dict[str, AgentSpanKind] = {
    "AGENT": AgentSpanKind.AGENT_TASK,
    "LLM": AgentSpanKind.LLM_INFERENCE,
    "EMBEDDING": AgentSpanKind.LLM_INFERENCE,
    "TOOL": AgentSpanKind.TOOL_CALL,
    "GUARDRAIL": AgentSpanKind.POLICY_CHECK,
}

TRACELOOP_KINDS: dict[str, AgentSpanKind] = {
    "agent": AgentSpanKind.AGENT_TASK,
    "workflow": AgentSpanKind.AGENT_TASK,
    "tool": AgentSpanKind.TOOL_CALL,
}
