"""The built-in plan policy: plans come from ``[plans.NAME]`` tables, an account's plan from its record.

Defaults follow the product's Device Limit note: free 3 devices and 5 GiB, pro 10 and 1 TiB,
enterprise unlimited. An account whose plan is no longer configured falls back to
``[plans] default``.
"""

from __future__ import annotations

from vault.plugin_api import Account, PlanConfig, PlanPolicy


class PlansPolicy(PlanPolicy):
    """Reads limits from the node's ``[plans.*]`` configuration."""

    def plan_names(self) -> list[str]:
        return sorted(self.config.plans.tiers)

    async def plan_for(self, account: Account) -> str:
        return account.plan if account.plan in self.config.plans.tiers else self.config.plans.default

    async def device_limit(self, account: Account) -> int:
        return (await self._plan(account)).devices

    async def storage_quota(self, account: Account) -> int:
        return int((await self._plan(account)).quota)

    async def _plan(self, account: Account) -> PlanConfig:
        return self.config.plans.tiers[await self.plan_for(account)]
