"""Entry-point loading: the core reaches backends, push providers and policies only through here.

Built-in plugins are registered in ``pyproject.toml`` under the same groups a third-party package
uses, so there is one way in for both.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

BACKENDS = "vault.backends"
PUSH = "vault.push"
POLICIES = "vault.policies"


class PluginNotFound(LookupError):
    """No plugin of that name is installed in the group."""


def available(group: str) -> list[str]:
    """Names registered in an entry-point group, sorted."""
    return sorted({ep.name for ep in entry_points(group=group)})


def not_found(group: str, name: str) -> PluginNotFound:
    """The error for a missing plugin: names the group and what is installed in it."""
    choices = ", ".join(available(group)) or "none installed"
    return PluginNotFound(f"no {group} plugin named {name!r} (available: {choices})")


def require(group: str, name: str) -> None:
    """Raise ``PluginNotFound`` unless ``name`` is installed in ``group`` (without importing it)."""
    if name not in available(group):
        raise not_found(group, name)


def load(group: str, name: str) -> Any:
    """The object registered as ``name`` in ``group``; ``PluginNotFound`` names the alternatives."""
    for ep in entry_points(group=group):
        if ep.name == name:
            return ep.load()
    raise not_found(group, name)
