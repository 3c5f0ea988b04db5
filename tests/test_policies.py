"""Plan policies: the interface, the built-in ``plans`` policy, and a third-party one installed
through an entry point (a ``*.dist-info`` written on ``sys.path``, as ``pip install`` would)."""

from __future__ import annotations

import importlib
import inspect
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from vault_plugins.plans import PlansPolicy

from tests.auth_support import REGISTER, quiet_node, register, register_body
from vault import plugins
from vault.app import create_app
from vault.config import Config
from vault.policies import Account, PlanPolicy, load_policy

GiB = 1024**3


def _account(plan: str = "free", email: str = "a@example.com") -> Account:
    return Account(id="user_1", email=email, name="A", plan=plan)


def test_every_policy_method_is_tested_here() -> None:
    """A new interface method fails this until a test in this module exercises it."""
    source = inspect.getsource(sys.modules[__name__])
    abstract = sorted(PlanPolicy.__abstractmethods__)
    assert abstract == ["device_limit", "plan_for", "plan_names", "storage_quota"]
    for name in abstract:
        assert f".{name}(" in source, name
        assert (getattr(PlanPolicy, name).__doc__ or "").strip().count("\n") == 0  # one-line docstring


async def test_built_in_plans_follow_the_spec(make_config: Callable[..., Config]) -> None:
    policy = PlansPolicy(make_config())
    assert policy.plan_names() == ["enterprise", "free", "pro"]
    assert await policy.plan_for(_account("free")) == "free"
    assert await policy.device_limit(_account("free")) == 3
    assert await policy.storage_quota(_account("free")) == 5 * GiB
    assert await policy.device_limit(_account("pro")) == 10
    assert await policy.storage_quota(_account("pro")) == 1024 * GiB
    assert await policy.device_limit(_account("enterprise")) == 0
    assert await policy.storage_quota(_account("enterprise")) == 0


async def test_built_in_plans_read_the_config_and_fall_back_to_the_default(
    make_config: Callable[..., Config],
) -> None:
    config = make_config(plans={"default": "pro", "pro": {"devices": 4}, "family": {"devices": 6, "quota": "2TiB"}})
    policy = load_policy(config)
    assert isinstance(policy, PlansPolicy)
    assert await policy.device_limit(_account("pro")) == 4
    assert await policy.storage_quota(_account("pro")) == 1024 * GiB  # untouched keys keep defaults
    assert await policy.device_limit(_account("family")) == 6
    assert await policy.plan_for(_account("retired-plan")) == "pro"
    assert await policy.storage_quota(_account("retired-plan")) == 1024 * GiB


FAKE_POLICY = textwrap.dedent(
    '''
    """A stand-in for a directory-backed policy: plans from the email domain."""

    from vault.policies import Account, PlanPolicy


    class DomainPolicy(PlanPolicy):
        def plan_names(self) -> list[str]:
            return ["staff", "guest"]

        async def plan_for(self, account: Account) -> str:
            return "staff" if account.email.endswith("@corp.example") else "guest"

        async def device_limit(self, account: Account) -> int:
            return 0 if await self.plan_for(account) == "staff" else 1

        async def storage_quota(self, account: Account) -> int:
            return 0 if await self.plan_for(account) == "staff" else 1234
    '''
)


@pytest.fixture
def fake_policy_installed(tmp_path: Path) -> Iterator[str]:
    """Install ``fake_domain_policy`` with a ``vault.policies`` entry point named ``domain``."""
    site = tmp_path / "site"
    dist = site / "fake_domain_policy-1.0.dist-info"
    dist.mkdir(parents=True)
    (site / "fake_domain_policy.py").write_text(FAKE_POLICY)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-domain-policy\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[vault.policies]\ndomain = fake_domain_policy:DomainPolicy\n")
    sys.path.insert(0, str(site))
    importlib.invalidate_caches()
    try:
        yield "domain"
    finally:
        sys.path.remove(str(site))
        sys.modules.pop("fake_domain_policy", None)
        importlib.invalidate_caches()


async def test_a_policy_installed_through_an_entry_point_is_used_by_the_node(
    fake_policy_installed: str, make_config: Callable[..., Config]
) -> None:
    assert fake_policy_installed in plugins.available(plugins.POLICIES)
    config = make_config(plans={"policy": fake_policy_installed})
    async with quiet_node(config) as app:
        assert type(app.node.policy).__name__ == "DomainPolicy"
        client = app.test_client()
        guest = await register(client, "visitor@example.com")
        response = await client.post(REGISTER, json=register_body("visitor@example.com", device_id="second"))
        assert response.status_code == 403
        assert (await response.get_json())["error"]["details"] == {"limit": 1, "plan": "guest"}
        assert await app.node.auth.storage_quota(guest["user"]["id"]) == 1234
        staff = await register(client, "boss@corp.example")
        for i in range(4):
            await register(client, "boss@corp.example", device_id=f"extra-{i}")
        assert await app.node.auth.storage_quota(staff["user"]["id"]) == 0


def test_an_unknown_policy_name_stops_the_node_with_the_alternatives(
    make_config: Callable[..., Config],
) -> None:
    with pytest.raises(plugins.PluginNotFound, match="plans"):
        create_app(make_config(plans={"policy": "ldap"}))


def test_a_plugin_that_is_not_a_policy_is_refused(fake_policy_installed: str, tmp_path: Path) -> None:
    site = Path(sys.path[0])
    (site / "fake_domain_policy.py").write_text(
        "class DomainPolicy:\n    def __init__(self, config: object) -> None:\n        pass\n"
    )
    sys.modules.pop("fake_domain_policy", None)
    config: Any = Config()
    config.plans.policy = fake_policy_installed
    with pytest.raises(TypeError, match="PlanPolicy"):
        load_policy(config)
