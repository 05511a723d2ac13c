"""``api: azure_openai``: Azure OpenAI, OpenAI's wire format on Azure's paths.

Deployment paths (``/openai/deployments/{deployment}/chat/completions?api-version=...``,
also ``/completions``, ``/embeddings``) name the deployment in the path; the v1 paths
(``/openai/v1/chat/completions``, ``/openai/v1/responses``...) in the body's ``model``.
Either way the route's ``deployments`` says which model the deployment runs (what the call
is priced as, under genai-prices' ``azure`` prices); an unlisted deployment is taken to be
named after its model. Keys go in ``api-key`` (or ``Authorization: Bearer`` for Entra ID).
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote, unquote

from agent_sre.gateway.providers.openai import OpenAI

if TYPE_CHECKING:
    from agent_sre.config import ProxyRoute
    from agent_sre.gateway.plan import CallPlan

_DEPLOYMENTS = "/openai/deployments/"


class AzureOpenAI(OpenAI):
    api = "azure_openai"
    provider = "azure.ai.openai"
    price_id = "azure"
    credential_headers: tuple[str, ...] = ("api-key", "Authorization")

    def plan(self, route: ProxyRoute, method: str, path: str, body: bytes) -> CallPlan:
        plan = super().plan(route, method, path, body)
        if plan.operation is not None:
            deployment = deployment_of(path)
            if deployment:
                plan.model = route.deployments.get(deployment, deployment)
        return plan

    def name_model(self, route: ProxyRoute, plan: CallPlan) -> None:
        if plan.model:
            plan.model = route.deployments.get(plan.model, plan.model)

    def key_header(self, key: str) -> tuple[str, str]:
        return "api-key", key

    def with_model(self, plan: CallPlan, path: str, model: str) -> tuple[bytes, str] | None:
        if path.startswith(_DEPLOYMENTS):
            rest = path[len(_DEPLOYMENTS) :].partition("/")[2]
            return plan.body, f"{_DEPLOYMENTS}{quote(model, safe='-._~')}/{rest}"
        return super().with_model(plan, path, model)


def deployment_of(path: str) -> str:
    """The deployment a deployment path names ("" for other paths)."""
    if not path.startswith(_DEPLOYMENTS):
        return ""
    return unquote(path[len(_DEPLOYMENTS) :].partition("/")[0])


PROVIDER = AzureOpenAI()
