"""AgentBudget status over the fleet from the shared Redis ledger: two real daemons with
``budgets.store: redis`` (a real redis-server), calls proxied through each to the stand-in
provider, the real operator against kmock. Each daemon spends its own calls; the status
shows what both spent, which a daemon's own ledger could not."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
import pytest

from agent_sre_operator.kinds import API_VERSION
from tests.operator.single import single
from tests.operator.test_operator_kmock import BASE, NS, cr_path
from tests.proxy.test_redis_ledger import REDIS, RedisProcess
from tests.support.daemon import merge

if TYPE_CHECKING:
    from collections.abc import Iterator

pytest.importorskip("kmock")
pytest.importorskip("kopf")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(REDIS is None, reason="redis-server (tests/setup-services.sh)"),
]

MODEL = "budget-model"
OUTPUT_TOKENS = 5
PER_MTOK = 1000.0
CALL_COST = OUTPUT_TOKENS * PER_MTOK / 1_000_000  # input is free: what a call costs


@pytest.fixture
def provider_url() -> Iterator[str]:
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, str(root / "tests" / "fakes" / "provider.py"), "--port", "0"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


async def spend(url: str, calls: int) -> list[int]:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": OUTPUT_TOKENS}  # fmt: skip
    headers = {"X-Agent-Id": "support", "Authorization": "Bearer sk-test"}
    async with aiohttp.ClientSession() as session:
        statuses = []
        for _ in range(calls):
            async with session.post(url, json=body, headers=headers) as response:
                await response.read()
                statuses.append(response.status)
        return statuses


def test_budget_status_is_the_fleets_spend_from_the_shared_ledger(
    tmp_path: Path, provider_url: str
) -> None:
    redis_server = RedisProcess(tmp_path)
    redis_server.start()
    try:
        base = merge(BASE, {
            "proxy": {"routes": [{"name": "openai", "prefix": "/openai",
                                  "upstream": provider_url, "api": "openai"}]},
            "budgets": {
                "store": "redis", "redis_url": redis_server.url, "auto_throttle": False,
                "price_overrides": {MODEL: {"input_per_mtok": 0.0, "output_per_mtok": PER_MTOK}},
            },
        })  # fmt: skip
        with single(tmp_path, base, daemons=2) as stand:
            stand.start_operator("op")
            body = {"apiVersion": API_VERSION, "kind": "AgentBudget",
                    "metadata": {"name": "daily"},
                    "spec": {"scope": "agent", "limit_usd": 1.0, "window": "day"}}  # fmt: skip
            stand.cluster.create(cr_path("agentbudgets"), body, NS)

            def status() -> dict[str, object]:
                obj = stand.cluster.get(cr_path("agentbudgets", "daily")) or {}
                return dict(obj.get("status") or {})

            def applied() -> bool:
                conditions = status().get("conditions") or []
                return any(c["type"] == "Applied" and c["status"] == "True"
                           for c in conditions)  # type: ignore[union-attr,index]  # fmt: skip

            stand.wait(applied)
            assert status()["applied"] == "2/2"
            for index, calls in ((0, 3), (1, 2)):
                url = stand.daemons[index].url("proxy", "/openai/v1/chat/completions")
                assert asyncio.run(spend(url, calls)) == [200] * calls
            # 5 calls over two daemons; either daemon's own ledger would hold 3 or 2
            stand.wait(lambda: status().get("spentUsd") == pytest.approx(5 * CALL_COST))
            assert status()["leftUsd"] == pytest.approx(1.0 - 5 * CALL_COST)
            assert status()["exhausted"] is False
    finally:
        redis_server.stop()
