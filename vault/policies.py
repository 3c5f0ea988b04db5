"""Plan policies: how many devices and how many bytes an account may have.

A policy is a class registered in the ``vault.policies`` entry-point group and named by
``[plans] policy`` (default ``"plans"``, the built-in one that reads ``[plans.*]``). It is built
once per node as ``Policy(config)`` and asked on every registration and upload, so a plan changed
with ``vault user set-plan`` (or in an LDAP group, for a policy that reads one) applies at once.

A third-party policy implements the four methods of ``PlanPolicy``; every answer is about an
``Account``, a read-only view of the user without any secret.
"""

from __future__ import annotations

import abc

import msgspec

from vault import plugins
from vault.config import Config

UNLIMITED = 0


class Account(msgspec.Struct, frozen=True, kw_only=True):
    """What a policy may know about a user."""

    id: str
    email: str
    name: str
    plan: str


class PlanPolicy(abc.ABC):
    """Answers plan questions about an account; ``0`` means unlimited."""

    def __init__(self, config: Config) -> None:
        self.config = config

    @abc.abstractmethod
    def plan_names(self) -> list[str]:
        """Names of the plans an account can be put on (checked by ``vault user set-plan``)."""

    @abc.abstractmethod
    async def plan_for(self, account: Account) -> str:
        """The name of the plan that applies to ``account`` right now."""

    @abc.abstractmethod
    async def device_limit(self, account: Account) -> int:
        """How many devices ``account`` may register (0 = unlimited)."""

    @abc.abstractmethod
    async def storage_quota(self, account: Account) -> int:
        """How many bytes ``account`` may store (0 = unlimited)."""


def load_policy(config: Config) -> PlanPolicy:
    """The policy named by ``[plans] policy``, found through the ``vault.policies`` group."""
    cls = plugins.load(plugins.POLICIES, config.plans.policy)
    policy = cls(config)
    if not isinstance(policy, PlanPolicy):
        raise TypeError(f"policy {config.plans.policy!r} does not implement vault.policies.PlanPolicy")
    return policy
