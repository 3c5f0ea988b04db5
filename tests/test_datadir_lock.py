"""One node per data directory: the node lock that ``Node`` takes and ``vault gc`` respects."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from vault.config import Config
from vault.datadir_lock import DataDirLocked, hold_node_lock, node_is_running
from vault.node import Node

HOLDER = """
import sys
from vault.datadir_lock import hold_node_lock
with hold_node_lock(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.read()
"""


def test_lock_is_exclusive_and_released(tmp_path: Path) -> None:
    assert not node_is_running(tmp_path)
    with hold_node_lock(tmp_path):
        assert node_is_running(tmp_path)
        with pytest.raises(DataDirLocked, match="another vault node is running"), hold_node_lock(tmp_path):
            pass
    assert not node_is_running(tmp_path)
    with hold_node_lock(tmp_path):
        pass


def test_lock_held_by_another_process_is_seen_and_freed_when_it_exits(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        assert node_is_running(tmp_path)
        with pytest.raises(DataDirLocked), hold_node_lock(tmp_path):
            pass
    finally:
        holder.communicate("", timeout=30)
    assert not node_is_running(tmp_path)


async def test_a_second_node_on_the_same_data_dir_refuses_to_open(make_config: Callable[..., Config]) -> None:
    config = make_config()
    first = Node(config)
    await first.open()
    try:
        with pytest.raises(DataDirLocked):
            await Node(config).open()
        assert node_is_running(Path(config.storage.data_dir))
    finally:
        await first.close()
    assert not node_is_running(Path(config.storage.data_dir))
