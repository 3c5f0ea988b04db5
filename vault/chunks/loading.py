"""Building the chunk backend named by ``[storage] backend``, through the ``vault.backends`` group.

``[storage.options]`` (or ``[storage.<backend>]``) is decoded into the backend's ``Options``
struct here, before the backend exists, so a wrong key or type is a ``ConfigError`` naming
``storage.options.<key>`` (or ``storage.s3.<key>``: the table the user wrote; the same one-line
refusal as any other config key), never a traceback from inside a backend.
"""

from __future__ import annotations

import re
from pathlib import Path

import msgspec

from vault import plugins
from vault.chunks.backend import BackendOptions, ChunkBackend
from vault.config import Config, ConfigError


def _key_of(message: str, table: str = "options") -> str:
    """The dotted key a msgspec error is about: ``at `$.a.b``` or ``unknown field `x```."""
    at = re.search(r"at `\$\.?([^`]*)`", message)
    where = at.group(1) if at else ""
    field = re.search(r"(?:unknown|missing required) field `([^`]*)`", message)
    if field:
        where = f"{where}.{field.group(1)}" if where else field.group(1)
    key = f"storage.{table}"
    return f"{key}.{where}" if where else key


def backend_class(config: Config) -> type[ChunkBackend]:
    """The class registered as ``[storage] backend``; ``PluginNotFound`` when none is."""
    cls = plugins.load(plugins.BACKENDS, config.storage.backend)
    if not (isinstance(cls, type) and issubclass(cls, ChunkBackend)):
        raise TypeError(f"backend {config.storage.backend!r} does not implement ChunkBackend")
    options = getattr(cls, "Options", None)
    if not (isinstance(options, type) and issubclass(options, BackendOptions)):
        raise TypeError(f"backend {config.storage.backend!r}: Options is not a BackendOptions struct")
    return cls


def backend_options(config: Config, cls: type[ChunkBackend] | None = None) -> BackendOptions:
    """``[storage.options]`` decoded into the backend's ``Options``; ``ConfigError`` names a bad key."""
    cls = cls or backend_class(config)
    try:
        return msgspec.convert(dict(config.storage.options), cls.Options)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"config key {_key_of(str(exc), config.storage.options_table)}: {exc}") from None


def make_backend(config: Config) -> ChunkBackend:
    """The chunk backend named by ``[storage] backend``, built with its decoded options."""
    cls = backend_class(config)
    options = backend_options(config, cls)
    # The class is abstract to mypy; a registered backend is a concrete subclass.
    return cls(Path(config.storage.data_dir) / "chunks", options)  # type: ignore[call-arg]
