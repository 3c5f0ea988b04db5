"""``[storage.options]`` is decoded into the backend's ``Options`` struct by ``make_backend``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from vault_backends.fs_backend import FsBackend, FsOptions
from vault_backends.lmdb_backend import INITIAL_MAP_SIZE, LmdbBackend, LmdbOptions

from vault.chunks.backend import BackendOptions, ChunkBackend, options_as
from vault.chunks.loading import backend_options, make_backend
from vault.chunks.memory import MemoryBackend, MemoryOptions
from vault.chunks.wrappers import RetryingBackend
from vault.config import Config, ConfigError, config_from_mapping


def config_for(tmp_path: Path, backend: str, options: dict[str, Any]) -> Config:
    return config_from_mapping({"storage": {"data_dir": str(tmp_path), "backend": backend, "options": options}})


@pytest.mark.parametrize("backend", ["lmdb", "fs", "memory"])
def test_an_unknown_key_is_refused_naming_it(tmp_path: Path, backend: str) -> None:
    with pytest.raises(ConfigError, match=r"^config key storage\.options\.fsync_every: .*unknown field"):
        make_backend(config_for(tmp_path, backend, {"fsync_every": 3}))


@pytest.mark.parametrize(
    ("backend", "key", "value"),
    [("lmdb", "map_size", "64MiB"), ("lmdb", "threads", True), ("fs", "threads", 2.5), ("memory", "capacity", -1)],
)
def test_a_wrong_type_or_value_is_refused_naming_the_key(tmp_path: Path, backend: str, key: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=rf"^config key storage\.options\.{key}: "):
        make_backend(config_for(tmp_path, backend, {key: value}))


def test_the_refusal_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        backend_options(config_for(tmp_path, "lmdb", {"threads": "four"}))
    assert "\n" not in str(caught.value)
    assert str(caught.value) == "config key storage.options.threads: Expected `int`, got `str` - at `$.threads`"


def test_valid_options_reach_the_backend(tmp_path: Path) -> None:
    lmdb = make_backend(config_for(tmp_path, "lmdb", {"map_size": 32 << 20, "threads": 2}))
    assert isinstance(lmdb, LmdbBackend)
    assert lmdb.options == LmdbOptions(map_size=32 << 20, threads=2)
    assert lmdb.threads.limiter.total_tokens == 2
    fs = make_backend(config_for(tmp_path, "fs", {"threads": 3}))
    assert isinstance(fs, FsBackend) and fs.options == FsOptions(threads=3)
    assert fs.path == tmp_path / "chunks"
    memory = make_backend(config_for(tmp_path, "memory", {"read_piece": 100}))
    assert isinstance(memory, MemoryBackend) and memory.options == MemoryOptions(read_piece=100)


def test_defaults_are_unchanged(tmp_path: Path) -> None:
    """The built-in backends kept their option names and defaults when they moved to structs."""
    assert LmdbOptions() == LmdbOptions(map_size=INITIAL_MAP_SIZE, threads=4)
    assert FsOptions() == FsOptions(threads=4)
    lmdb = make_backend(config_for(tmp_path, "lmdb", {}))
    assert isinstance(lmdb, LmdbBackend) and lmdb.options == LmdbOptions()


def test_options_as_takes_a_struct_none_or_a_mapping() -> None:
    given = FsOptions(threads=9)
    assert options_as(FsOptions, given) is given
    assert options_as(FsOptions, None) == FsOptions()
    assert options_as(FsOptions, {"threads": 2}) == FsOptions(threads=2)
    with pytest.raises(TypeError, match="expected FsOptions"):
        options_as(FsOptions, LmdbOptions())


def test_a_backend_without_options_keeps_the_base(tmp_path: Path) -> None:
    """A backend that declares no ``Options`` takes an empty table and refuses any key."""
    assert RetryingBackend.Options is ChunkBackend.Options is BackendOptions
    assert backend_options(config_for(tmp_path, "memory", {}), RetryingBackend) == BackendOptions()
    with pytest.raises(ConfigError, match=r"^config key storage\.options\.read_piece: "):
        backend_options(config_for(tmp_path, "memory", {"read_piece": 1}), RetryingBackend)
