"""The agent-sre operator: SLOs, budgets, chaos experiments and rollouts as Kubernetes
resources, rendered into the daemons' configuration and applied by a reload (docs/operator.md).

It uses the core (``agent_sre``) for every validation, so a custom resource is judged by the
same models and messages as ``agent-sre validate``; it never imports the daemon shell.
"""
