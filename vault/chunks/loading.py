"""Building the chunk backend named by ``[storage] backend``, through the ``vault.backends`` group."""

from __future__ import annotations

from pathlib import Path

from vault import plugins
from vault.chunks.backend import ChunkBackend
from vault.config import Config


def make_backend(config: Config) -> ChunkBackend:
    """The chunk backend named by ``[storage] backend``, found through ``vault.backends``."""
    cls = plugins.load(plugins.BACKENDS, config.storage.backend)
    backend = cls(Path(config.storage.data_dir) / "chunks", dict(config.storage.options))
    if not isinstance(backend, ChunkBackend):
        raise TypeError(f"backend {config.storage.backend!r} does not implement ChunkBackend")
    return backend
