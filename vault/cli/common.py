"""Options every subcommand takes, and loading the config they point at."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Collection

from vault import plugins
from vault.chunks.loading import backend_options
from vault.config import Config, ConfigError, load_config

ALL_PLUGIN_GROUPS = (plugins.BACKENDS, plugins.POLICIES, plugins.PUSH)


class CommandError(Exception):
    """A command cannot proceed; the message is shown to the user without a traceback."""


def common_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--config", metavar="FILE", help="TOML config file (default: $VAULT_CONFIG)")
    parent.add_argument("--data-dir", metavar="DIR", help="data directory (default: ./vault-data)")
    return parent


def config_from_args(args: argparse.Namespace) -> Config:
    return load_config(args.config, data_dir=args.data_dir, bind=getattr(args, "bind", None))


def named_plugins(config: Config) -> list[tuple[str, str, str]]:
    """``(config key, entry-point group, name)`` for every plugin the config names."""
    return [
        ("storage.backend", plugins.BACKENDS, config.storage.backend),
        ("plans.policy", plugins.POLICIES, config.plans.policy),
        *(("push.providers", plugins.PUSH, name) for name in config.push.providers),
    ]


def check_plugins(config: Config, groups: Collection[str] = ALL_PLUGIN_GROUPS) -> None:
    """Refuse a config that names a plugin which is not installed, before a command does anything.

    The ``ConfigError`` is one line naming the key and what is installed, e.g. ``config key
    plans.policy: no vault.policies plugin named 'ldap' (available: plans)``.
    """
    for key, group, name in named_plugins(config):
        if group in groups:
            try:
                plugins.require(group, name)
            except plugins.PluginNotFound as exc:
                raise ConfigError(f"config key {key}: {exc}") from None
    if plugins.BACKENDS in groups:
        # The backend's own options too: a wrong [storage.options] key is one line naming it.
        try:
            backend_options(config)
        except (TypeError, ImportError) as exc:
            raise ConfigError(f"config key storage.backend: {exc}") from None


def setup_logging(level: str = "info", *, json_lines: bool = True) -> None:
    from vault.logs import JsonFormatter

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter("%(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs every request line at INFO, and a push endpoint or webhook URL may carry a secret
    # in its path or query (a Web Push subscription's URL is a capability): keep those out.
    for name in ("httpx", "httpcore", "hpack"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
