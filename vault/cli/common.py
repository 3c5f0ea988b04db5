"""Options every subcommand takes, and loading the config they point at."""

from __future__ import annotations

import argparse
import logging
import sys

from vault.config import Config, load_config


class CommandError(Exception):
    """A command cannot proceed; the message is shown to the user without a traceback."""


def common_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--config", metavar="FILE", help="TOML config file (default: $VAULT_CONFIG)")
    parent.add_argument("--data-dir", metavar="DIR", help="data directory (default: ./vault-data)")
    return parent


def config_from_args(args: argparse.Namespace) -> Config:
    return load_config(args.config, data_dir=args.data_dir, bind=getattr(args, "bind", None))


def setup_logging(level: str = "info", *, json_lines: bool = True) -> None:
    from vault.logs import JsonFormatter

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter("%(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
