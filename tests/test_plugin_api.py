"""``vault.plugin_api`` is the plugins' only way into the node, and the built-in plugins use only it."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from vault_plugins.push_log import LogProvider

import vault.plugin_api as api
from vault.plugin_api import (
    Delivered,
    Outcome,
    ProviderContext,
    ProviderOptions,
    PushMessage,
    PushProvider,
    PushRegistration,
    RetryLater,
    check_provider,
)

ROOT = Path(__file__).resolve().parent.parent
PLUGIN_TREES = (ROOT / "backends", ROOT / "plugins")


def imported_modules(path: Path) -> Iterator[tuple[int, str]]:
    """``(line, module)`` for every absolute import in a file; ``from vault import x`` is ``vault.x``."""
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "vault":
                for alias in node.names:
                    yield node.lineno, f"vault.{alias.name}"
            else:
                yield node.lineno, node.module


def is_vault(module: str) -> bool:
    return module == "vault" or module.startswith("vault.")


def test_the_guard_sees_every_form_of_import(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import vault.config\nfrom vault import plugin_api, lmdb_writer\nfrom vault.chunks.ids import ChunkId\n"
        "from . import sibling\nimport vault_backends._common\n"
    )
    found = [module for _, module in imported_modules(sample) if is_vault(module)]
    assert found == ["vault.config", "vault.plugin_api", "vault.lmdb_writer", "vault.chunks.ids"]


def test_plugins_import_the_node_only_through_plugin_api() -> None:
    files = [path for tree in PLUGIN_TREES for path in sorted(tree.rglob("*.py"))]
    assert len(files) >= 6  # the guard really looked at the built-in backends and plugins
    offenders = [
        f"{path.relative_to(ROOT)}:{line}: {module}"
        for path in files
        for line, module in imported_modules(path)
        if is_vault(module) and module != "vault.plugin_api"
    ]
    assert offenders == []


def test_the_core_never_imports_a_plugin_package() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{line}: {module}"
        for path in sorted((ROOT / "vault").rglob("*.py"))
        for line, module in imported_modules(path)
        if module.split(".")[0] in {"vault_backends", "vault_plugins"}
    ]
    assert offenders == []


def test_all_is_exact_sorted_and_resolvable() -> None:
    assert len(api.__all__) == len(set(api.__all__))
    assert all(hasattr(api, name) for name in api.__all__)
    public = {name for name in vars(api) if not name.startswith("_") and name != "annotations"}
    assert public == set(api.__all__)
    for name in ("ChunkBackend", "BackendOptions", "Harness", "MemoryBackend", "RetryingBackend", "PlanPolicy"):
        assert name in api.__all__
    for name in ("PushProvider", "ProviderOptions", "Outcome", "LmdbWriter", "ReadGate", "PlanConfig", "Config"):
        assert name in api.__all__


def test_the_module_docstring_is_the_authors_guide() -> None:
    guide = api.__doc__ or ""
    for group in ("vault.backends", "vault.push", "vault.policies"):
        assert group in guide
    for name in ("ChunkBackend", "BackendOptions", "Harness", "PushProvider", "PlanPolicy"):
        assert name in guide


async def test_the_log_provider_passes_the_provider_check() -> None:
    await check_provider(LogProvider(LogProvider.Options()))


class _Recording(PushProvider):
    def __init__(self, options: ProviderOptions, outcome: object) -> None:
        super().__init__(options)
        self.outcome = outcome
        self.events: list[str] = []

    async def open(self, context: ProviderContext) -> None:
        self.events.append("open")

    async def close(self) -> None:
        self.events.append("close")

    async def send(self, registration: PushRegistration, message: PushMessage) -> Outcome:
        self.events.append(f"send {registration.platform}")
        return self.outcome  # type: ignore[return-value]


async def test_the_provider_check_opens_sends_to_every_platform_and_closes() -> None:
    provider = _Recording(ProviderOptions(), RetryLater("throttled", delay=2.0))
    await check_provider(provider)
    assert provider.events[0] == "open" and provider.events[-1] == "close"
    assert {"send android", "send ios", "send web"} <= set(provider.events)


@pytest.mark.parametrize(
    ("outcome", "complaint"),
    [(None, "got None"), ("delivered", "got 'delivered'"), (RetryLater("x", delay=-1), "negative retry delay")],
)
async def test_the_provider_check_refuses_a_wrong_outcome(outcome: object, complaint: str) -> None:
    provider = _Recording(ProviderOptions(), outcome)
    with pytest.raises(AssertionError, match=complaint):
        await check_provider(provider)
    assert provider.events[-1] == "close"  # closed even when a send fails the check


async def test_the_provider_check_refuses_options_that_accept_unknown_keys() -> None:
    class Lenient(ProviderOptions, forbid_unknown_fields=False):
        pass

    class LenientProvider(_Recording):
        Options = Lenient

    with pytest.raises(AssertionError, match="unknown key was accepted"):
        await check_provider(LenientProvider(Lenient(), Delivered()))


async def test_the_provider_check_refuses_options_that_are_not_provider_options() -> None:
    class Foreign(msgspec.Struct):
        pass

    class ForeignProvider(_Recording):
        Options = Foreign  # type: ignore[assignment]

    with pytest.raises(AssertionError, match="not a ProviderOptions subclass"):
        await check_provider(ForeignProvider(ProviderOptions(), Delivered()))


async def test_the_shipped_fake_provider_passes_the_provider_check_and_records_sends() -> None:
    from vault.plugin_api import FakeProvider, RetryLater

    fake = FakeProvider(script=lambda n, r, m: RetryLater("busy", delay=1.0) if n == 1 else Delivered())
    await check_provider(fake)
    assert fake.opened and fake.closed
    assert len(fake.sent) == 6  # every sample registration, visible and silent
    assert len(fake.visible()) == 3
