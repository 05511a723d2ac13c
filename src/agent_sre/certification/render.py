"""A verdict (``Verdict.to_dict()``, as the admin API gives it) as text for a terminal and as
Markdown for a pull request or a change ticket. Pure.

Values that come from clients (agent ids, versions, incident titles) are printed without
control characters, and in Markdown escaped, so a hostile agent id cannot add lines, links,
HTML or table cells to a ticket.
"""

from __future__ import annotations

import json
import re
from typing import Any

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()<>#+!|~&])")
MAX_SHOWN = 300


def plain(value: object) -> str:
    """``value`` as one line of printable text (at most :data:`MAX_SHOWN` characters)."""
    text = _CONTROL.sub("?", str(value))
    return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN] + "..."


def md(value: object) -> str:
    """``value`` as Markdown text that renders as itself."""
    return _MARKDOWN.sub(r"\\\1", plain(value))


def _tier(value: object) -> str:
    return "none" if value is None else str(value)


def _version(verdict: dict[str, Any]) -> str:
    return verdict.get("version") or "(no version)"


def _facts(evidence: dict[str, Any]) -> str:
    """The evidence of one criterion on one line (ids kept, long lists cut)."""
    return plain(json.dumps(evidence, sort_keys=True, separators=(", ", ": ")))


def as_text(verdict: dict[str, Any]) -> str:
    lines = [
        f"{plain(verdict['agent'])} {plain(_version(verdict))}: tier {_tier(verdict['tier'])}"
        f" (next: {_tier(verdict.get('next_tier'))}), evaluated {verdict['evaluated_at']}",
    ]
    if verdict.get("first_seen"):
        lines.append(f"seen {verdict['first_seen']} .. {verdict.get('last_seen')}")
    for criterion in verdict["criteria"]:
        mark = "PASS" if criterion["met"] else "FAIL"
        lines.append(
            f"  [{mark}] {criterion['tier']:<8} {criterion['name']:<18} "
            f"{plain(criterion['detail'])}"
        )
        lines.append(f"         evidence: {_facts(criterion['evidence'])}")
    missing = verdict.get("missing") or []
    if missing:
        lines.append(f"missing for {_tier(verdict.get('next_tier'))}:")
        lines.extend(f"  - {plain(item)}" for item in missing)
    elif verdict.get("next_tier") is None:
        lines.append("holds the highest tier")
    return "\n".join(lines)


def as_markdown(verdict: dict[str, Any]) -> str:
    tier = _tier(verdict["tier"])
    lines = [
        f"### Certification: {md(verdict['agent'])} {md(_version(verdict))} — **{md(tier)}**",
        "",
        f"Evaluated {md(verdict['evaluated_at'])} by agent-sre; next tier: "
        f"{md(_tier(verdict.get('next_tier')))}.",
        "",
        "| Tier | Criterion | Met | Detail |",
        "| --- | --- | --- | --- |",
    ]
    for criterion in verdict["criteria"]:
        met = "yes" if criterion["met"] else "**no**"
        lines.append(
            f"| {md(criterion['tier'])} | {md(criterion['name'])} | {met} | "
            f"{md(criterion['detail'])} |"
        )
    missing = verdict.get("missing") or []
    if missing:
        lines += ["", f"**Missing for {md(_tier(verdict.get('next_tier')))}:**", ""]
        lines.extend(f"- {md(item)}" for item in missing)
    lines += ["", "<details><summary>Evidence</summary>", ""]
    for criterion in verdict["criteria"]:
        lines.append(f"- {md(criterion['tier'])} / {md(criterion['name'])}: "
                     f"{md(_facts(criterion['evidence']))}")  # fmt: skip
    lines += ["", "</details>"]
    return "\n".join(lines)
