"""Building the push providers ``[push] providers`` names, through the ``vault.push`` group.

Each ``[push.<name>]`` table is decoded into that provider's ``Options`` before anything starts,
so a wrong key is a ``ConfigError`` naming ``push.<name>.<key>``; each provider gets its own
state directory under ``DATA_DIR/push/<name>`` and the node's VAPID key when opened.
"""

from __future__ import annotations

import re
from pathlib import Path

import msgspec

from vault import plugins
from vault.config import ConfigError, PushConfig
from vault.push.provider import ProviderContext, ProviderOptions, PushProvider
from vault.push.vapid import VapidKey


def _key_of(name: str, message: str) -> str:
    at = re.search(r"at `\$\.?([^`]*)`", message)
    where = at.group(1) if at else ""
    field = re.search(r"(?:unknown|missing required) field `([^`]*)`", message)
    if field:
        where = f"{where}.{field.group(1)}" if where else field.group(1)
    return f"push.{name}.{where}" if where else f"push.{name}"


def provider_class(name: str) -> type[PushProvider]:
    cls = plugins.load(plugins.PUSH, name)
    if not (isinstance(cls, type) and issubclass(cls, PushProvider)):
        raise TypeError(f"push provider {name!r} does not implement PushProvider")
    options = getattr(cls, "Options", None)
    if not (isinstance(options, type) and issubclass(options, ProviderOptions)):
        raise TypeError(f"push provider {name!r}: Options is not a ProviderOptions struct")
    return cls


def make_providers(config: PushConfig) -> dict[str, PushProvider]:
    """One provider per name in ``[push] providers``, built with its decoded options."""
    providers: dict[str, PushProvider] = {}
    for name in dict.fromkeys(config.providers):
        cls = provider_class(name)
        try:
            options = msgspec.convert(dict(config.options.get(name, {})), cls.Options)
        except msgspec.ValidationError as exc:
            raise ConfigError(f"config key {_key_of(name, str(exc))}: {exc}") from None
        providers[name] = cls(options)
    return providers


async def open_providers(providers: dict[str, PushProvider], data_dir: Path, vapid: VapidKey) -> None:
    """Open each provider with its state directory; a provider that cannot open stops the start
    with one line naming it (a missing webhook URL, an unreadable key file)."""
    for name, provider in providers.items():
        state_dir = data_dir / "push" / name
        state_dir.mkdir(parents=True, exist_ok=True)
        try:
            await provider.open(ProviderContext(name=name, state_dir=state_dir, vapid=vapid))
        except (ValueError, OSError) as exc:
            raise ConfigError(f"push provider {name!r} cannot start: {exc}") from None
