"""``vault fsck`` and ``vault gc``: checking and reclaiming chunk storage."""

from __future__ import annotations

import argparse


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser], parent: argparse.ArgumentParser) -> None:
    """Registers fsck and gc (filled in with the chunk store)."""
