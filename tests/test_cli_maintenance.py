"""``vault fsck`` and ``vault gc`` as a user runs them, against a data directory on disk."""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import pytest
import trio
from vault_backends.fs_backend import FsBackend

from vault import plugins
from vault.chunks import ChunkId, ChunkStore
from vault.chunks.loading import make_backend
from vault.chunks.refs import incref
from vault.cli import main
from vault.cli.maintenance import Progress, human_size
from vault.config import load_config
from vault.datadir_lock import hold_node_lock
from vault.meta import MetaStore, Txn

KiB = 1024


class DataDir:
    """A data directory with chunks stored and some referenced, built with the real stores."""

    def __init__(self, root: Path, backend: str) -> None:
        self.path = root / "data"
        self.config_file = root / "vault.toml"
        self.config_file.write_text(f'[storage]\nbackend = "{backend}"\n')
        self.path.mkdir()

    def args(self, command: str, *extra: str) -> list[str]:
        return [command, *extra, "--config", str(self.config_file), "--data-dir", str(self.path)]

    def populate(self, *, stored: int, referenced: int, missing_refs: int = 0) -> list[ChunkId]:
        """Store ``stored`` chunks (sizes 10 KiB + i), reference the first ``referenced`` of them."""

        async def build() -> list[ChunkId]:
            config = load_config(self.config_file, data_dir=str(self.path))
            meta, chunks = MetaStore(self.path / "meta"), ChunkStore(make_backend(config))
            await meta.open()
            await chunks.open()
            ids = [(await chunks.put_bytes(os.urandom(10 * KiB + i))).chunk_id for i in range(stored)]
            absent = [ChunkId(os.urandom(32)) for _ in range(missing_refs)]

            def reference(txn: Txn) -> None:
                incref(txn, ids[:referenced] + absent)

            await meta.write(reference)
            await chunks.close()
            await meta.close()
            return ids + absent

        return trio.run(build)

    def stored_ids(self) -> set[ChunkId]:
        async def listing() -> set[ChunkId]:
            config = load_config(self.config_file, data_dir=str(self.path))
            chunks = ChunkStore(make_backend(config))
            await chunks.open()
            ids = {c async for c in chunks.iterate()}
            await chunks.close()
            return ids

        return trio.run(listing)


@pytest.fixture(params=["lmdb", "fs"])
def data_dir(request: pytest.FixtureRequest, tmp_path: Path) -> DataDir:
    return DataDir(tmp_path, str(request.param))


@pytest.fixture
def fs_data_dir(tmp_path: Path) -> DataDir:
    return DataDir(tmp_path, "fs")


class Terminal(io.StringIO):
    """Stands in for stderr on a terminal."""

    def isatty(self) -> bool:
        return True


def test_fsck_of_a_healthy_store_exits_0_with_progress_lines_into_a_pipe(
    data_dir: DataDir, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir.populate(stored=3, referenced=2)
    assert main(data_dir.args("fsck")) == 0
    out, err = capsys.readouterr()
    assert "fsck: 3 chunks (30.0 KiB) verified; no problems" in out
    # Not a terminal: whole lines (the first and the final one, within seconds), no carriage return.
    assert "\r" not in err
    assert err.splitlines() == ["  1/3 chunks  10.0/30.0 KiB", "  3/3 chunks  30.0/30.0 KiB"]


def test_fsck_redraws_one_progress_line_on_a_terminal(
    data_dir: DataDir, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir.populate(stored=3, referenced=2)
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(data_dir.args("fsck")) == 0
    assert "no problems" in capsys.readouterr().out
    shown = terminal.getvalue()
    assert shown.startswith("\r  1/3 chunks") and shown.endswith("\r  3/3 chunks  30.0/30.0 KiB\n")
    assert shown.count("\n") == 1


def test_progress_into_a_log_writes_a_line_every_few_seconds_and_the_final_one() -> None:
    log = io.StringIO()
    ticks = iter([0.0, 1.0, 4.9, 5.0, 6.0, 9.0])  # the clock at each update
    progress = Progress(10, 10 * KiB, log, clock=ticks.__next__)
    for count in range(1, 6):
        progress.update(count, count * KiB)
    progress.update(10, 10 * KiB, final=True)
    assert log.getvalue() == (
        "  1/10 chunks  1.0/10.0 KiB\n  4/10 chunks  4.0/10.0 KiB\n  10/10 chunks  10.0/10.0 KiB\n"
    )


def test_progress_on_a_terminal_redraws_at_most_five_times_a_second() -> None:
    terminal = Terminal()
    ticks = iter([0.0, 0.1, 0.25, 0.3])
    progress = Progress(4, 4 * KiB, terminal, clock=ticks.__next__)
    for count in range(1, 4):
        progress.update(count, count * KiB)
    progress.update(4, 4 * KiB, final=True)
    assert terminal.getvalue() == "\r  1/4 chunks  1.0/4.0 KiB\r  3/4 chunks  3.0/4.0 KiB\r  4/4 chunks  4.0/4.0 KiB\n"


def test_fsck_finds_a_chunk_corrupted_on_disk(fs_data_dir: DataDir, capsys: pytest.CaptureFixture[str]) -> None:
    ids = fs_data_dir.populate(stored=4, referenced=4)
    victim = FsBackend(fs_data_dir.path / "chunks", {}).chunk_path(ids[2])
    raw = bytearray(victim.read_bytes())
    raw[100] ^= 0xFF
    victim.write_bytes(bytes(raw))
    assert main(fs_data_dir.args("fsck")) == 1
    out, _ = capsys.readouterr()
    problem_lines = [line for line in out.splitlines() if ids[2].hex() in line]
    assert len(problem_lines) == 1 and problem_lines[0].startswith("corrupt")
    assert not any(c.hex() in out for c in ids[:2] + ids[3:])
    assert "1 problem(s)" in out


def test_fsck_reports_referenced_chunks_that_are_not_stored(
    data_dir: DataDir, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = data_dir.populate(stored=2, referenced=2, missing_refs=1)
    assert main(data_dir.args("fsck")) == 1
    out, _ = capsys.readouterr()
    assert f"missing    {ids[2].hex()}" in out
    assert "2 chunks" in out


def test_fsck_runs_beside_a_running_node(data_dir: DataDir, capsys: pytest.CaptureFixture[str]) -> None:
    data_dir.populate(stored=2, referenced=0)
    with hold_node_lock(data_dir.path):
        assert main(data_dir.args("fsck")) == 0
    assert "no problems" in capsys.readouterr().out


def test_gc_without_yes_reports_and_deletes_nothing(data_dir: DataDir, capsys: pytest.CaptureFixture[str]) -> None:
    ids = data_dir.populate(stored=5, referenced=2)
    assert main(data_dir.args("gc")) == 0
    out, _ = capsys.readouterr()
    assert "3 of 5 chunk(s) are unreferenced; would reclaim" in out
    assert human_size(3 * 10 * KiB + 2 + 3 + 4) in out
    assert "--yes" in out
    assert data_dir.stored_ids() == set(ids)


def test_gc_yes_deletes_unreferenced_and_keeps_referenced(
    data_dir: DataDir, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = data_dir.populate(stored=5, referenced=2)
    assert main(data_dir.args("gc", "--yes")) == 0
    out, _ = capsys.readouterr()
    assert "reclaimed 3 unreferenced chunk(s)" in out
    assert "2 chunk(s)" in out
    assert data_dir.stored_ids() == set(ids[:2])
    assert main(data_dir.args("fsck")) == 0
    assert main(data_dir.args("gc")) == 0
    assert "nothing to reclaim; all 2 chunk(s) are referenced" in capsys.readouterr().out


def test_gc_refuses_while_a_node_holds_the_data_dir(data_dir: DataDir, capsys: pytest.CaptureFixture[str]) -> None:
    ids = data_dir.populate(stored=3, referenced=0)
    with hold_node_lock(data_dir.path):
        assert main(data_dir.args("gc", "--yes")) == 2
    _, err = capsys.readouterr()
    assert "a node is running" in err and str(data_dir.path) in err
    assert data_dir.stored_ids() == set(ids)


def test_maintenance_commands_refuse_a_missing_data_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("fsck", "gc"):
        assert main([command, "--data-dir", str(tmp_path / "nowhere")]) == 2
        assert "no data directory" in capsys.readouterr().err
    assert not (tmp_path / "nowhere").exists()


def test_maintenance_commands_refuse_an_unknown_backend_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "vault.toml"
    config.write_text('[storage]\nbackend = "s4"\n')
    (tmp_path / "data").mkdir()
    installed = ", ".join(plugins.available(plugins.BACKENDS))
    for command in ("fsck", "gc"):
        assert main([command, "--config", str(config), "--data-dir", str(tmp_path / "data")]) == 2
        assert capsys.readouterr().err.splitlines() == [
            f"vault: config key storage.backend: no vault.backends plugin named 's4' (available: {installed})"
        ]


def test_human_sizes() -> None:
    assert human_size(12) == "12 B"
    assert human_size(1536) == "1.5 KiB"
    assert human_size(5 * 1024**3) == "5.0 GiB"
    assert human_size(512 * 1024**2, 4 * 1024**3) == "0.5 GiB"
