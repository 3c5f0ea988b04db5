"""The ``vault`` command line: ``serve``, ``fsck``, ``gc``, ``user …``, ``keys …``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from vault.cli import maintenance, serve, users
from vault.cli.common import CommandError, common_options
from vault.config import ConfigError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vault", description="MegaVault node")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    parent = common_options()
    for module in (serve, maintenance, users):
        module.add_commands(commands, parent)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.run(args)
    except (ConfigError, CommandError) as exc:
        print(f"vault: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return result


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
