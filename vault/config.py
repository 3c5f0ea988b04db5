"""Node configuration: ``vault.toml`` decoded into structs.

Every section forbids unknown keys, so a typo refuses to start with a message naming the key.
Sizes and durations accept human strings ("5GiB", "7d"); they are decoded into ``ByteSize`` and
``Seconds`` so the rest of the code works with plain numbers.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from vault.numbers import ascii_int
from vault.units import parse_duration, parse_size

# The bounds a chunk size may take (API.md: uploadOptions.chunkSize within [64 KiB, 64 MiB]).
MIN_CHUNK_SIZE = 64 * 1024
MAX_CHUNK_SIZE = 64 * 1024 * 1024
# The bound on ``uploads.max_single_request_size`` (the largest chunk the store takes, too).
MAX_SINGLE_REQUEST_SIZE = 64 * 1024 * 1024


class ByteSize(int):
    """A size in bytes, decoded from an integer or a string such as ``"5GiB"``."""


class Seconds(float):
    """A duration in seconds, decoded from a number or a string such as ``"7d"``."""


class ConfigError(Exception):
    """The configuration cannot be used; the message names the offending key."""


class _Section(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class ServerConfig(_Section):
    bind: str = "127.0.0.1:8080"
    public_url: str = ""
    shutdown_grace: Seconds = Seconds(10)
    # A kept-alive connection with no request under way is closed after this long (a request
    # head that has not arrived whole by then included).
    keep_alive_timeout: Seconds = Seconds(75)
    # A client that takes none of an answer's bytes for this long is cut off (a download that
    # stalled, a peer that stopped reading); one that keeps reading, however slowly, is not.
    send_timeout: Seconds = Seconds(60)
    max_json_body: ByteSize = ByteSize(1024 * 1024)
    body_read_timeout: Seconds = Seconds(60)
    min_body_rate: ByteSize = ByteSize(4096)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # Downloads, chunk PUTs and tus PATCHes moving bytes at once: per account (beyond it 429) and
    # for the whole node (beyond it 503), both with Retry-After; 0 = no limit.
    max_transfers_per_user: Annotated[int, msgspec.Meta(ge=0)] = 32
    max_transfers: Annotated[int, msgspec.Meta(ge=0)] = 512


class StorageConfig(_Section):
    data_dir: str = "./vault-data"
    backend: str = "lmdb"
    # Passed as is to the backend plugin (e.g. endpoint and bucket for object storage). Written
    # as ``[storage.options]`` or as a table named after the backend (``[storage.s3]``).
    options: dict[str, Any] = msgspec.field(default_factory=dict)
    # Which of the two the options came from, so an error names the key the user wrote (set by
    # the loader).
    options_table: str = "options"


class AuthConfig(_Section):
    signup: Literal["open", "closed"] = "open"
    max_failed_logins_per_minute: int = 10
    refresh_retry_grace: Seconds = Seconds(10)
    access_token_ttl: Seconds = Seconds(7 * 86400)
    refresh_token_ttl: Seconds = Seconds(90 * 86400)
    max_concurrent_hashes: int = 2


class PlanConfig(_Section):
    devices: int = 3
    quota: ByteSize = ByteSize(5 * 1024**3)


def _default_plans() -> dict[str, PlanConfig]:
    return {
        "free": PlanConfig(devices=3, quota=ByteSize(5 * 1024**3)),
        "pro": PlanConfig(devices=10, quota=ByteSize(1024**4)),
        "enterprise": PlanConfig(devices=0, quota=ByteSize(0)),
    }


class PlansConfig(_Section):
    """``[plans]``: ``default`` names the plan of new accounts; ``[plans.NAME]`` tables define plans."""

    default: str = "free"
    policy: str = "plans"
    tiers: dict[str, PlanConfig] = msgspec.field(default_factory=_default_plans)


class UploadsConfig(_Section):
    session_ttl: Seconds = Seconds(24 * 3600)
    default_chunk_size: ByteSize = ByteSize(8 * 1024 * 1024)
    # The largest file ``POST /api/mobile/upload/file`` takes in one request (at most 64 MiB).
    max_single_request_size: ByteSize = ByteSize(16 * 1024 * 1024)
    gc_interval: Seconds = Seconds(3600)
    gc_grace: Seconds = Seconds(3600)
    # Upload sessions (chunk API and tus) a device may have open at once; more are refused with
    # 429 RATE_LIMIT_EXCEEDED until some complete, are aborted or expire.
    max_open_per_device: Annotated[int, msgspec.Meta(ge=1)] = 5000


class FilesConfig(_Section):
    """``[files]``: how long the trash and earlier versions keep content, and how often the node
    purges what is past that (``vault.files.reclaim``)."""

    trash_retention: Seconds = Seconds(30 * 86400)
    version_retention: Seconds = Seconds(30 * 86400)
    reclaim_interval: Seconds = Seconds(3600)


class SyncConfig(_Section):
    # Deletions (and every other change) are remembered this long; an older sync token answers
    # resetRequired, so a client resyncs instead of silently missing a delete.
    journal_retention: Seconds = Seconds(90 * 86400)
    # How often the node prunes journal entries past their retention.
    prune_interval: Seconds = Seconds(3600)


class QueueConfig(_Section):
    """``[queue]``: the offline operation queue (``vault.queue``)."""

    # Queued and waiting operations a device may have at once; more are answered ``failed``.
    max_open_per_device: Annotated[int, msgspec.Meta(ge=1)] = 1000
    # The first retry of an operation that failed for a passing reason; each next one waits twice
    # as long, at most ``retry_backoff_max``; after ``max_attempts`` tries the operation fails.
    retry_backoff: Seconds = Seconds(5)
    retry_backoff_max: Seconds = Seconds(3600)
    max_attempts: Annotated[int, msgspec.Meta(ge=1)] = 20
    # An upload operation still waiting for its upload this long after it was added fails.
    upload_wait: Seconds = Seconds(30 * 86400)
    # Done and failed operations are listed this long, then forgotten.
    keep_finished: Seconds = Seconds(7 * 86400)


class PushConfig(_Section):
    """``[push]``: delivery of notifications through the providers it names (``vault.push``)."""

    providers: list[str] = msgspec.field(default_factory=lambda: ["log"])
    # The ``[push.<name>]`` tables, each decoded by its provider into its own ``Options`` struct
    # when the node starts (a wrong key is refused naming ``push.<name>.<key>``). Tables of
    # providers not listed in ``providers`` are kept but not used.
    options: dict[str, dict[str, Any]] = msgspec.field(default_factory=dict)
    # A silent "changes available" message reaches each of a user's other devices at most once
    # per interval after a change; changes meanwhile are collapsed into the one waiting message.
    sync_hint_interval: Seconds = Seconds(30)
    # Deliveries sent at once, across all providers, and how long one send may take.
    concurrency: Annotated[int, msgspec.Meta(ge=1, le=256)] = 8
    send_timeout: Seconds = Seconds(15)
    # A failed send is retried after ``retry_backoff``, doubling up to ``retry_backoff_max`` (with
    # jitter), until the delivery is ``max_age`` old; then it is given up as failed.
    retry_backoff: Seconds = Seconds(5)
    retry_backoff_max: Seconds = Seconds(1800)
    max_age: Seconds = Seconds(2 * 86400)


class Config(_Section):
    server: ServerConfig = msgspec.field(default_factory=ServerConfig)
    storage: StorageConfig = msgspec.field(default_factory=StorageConfig)
    auth: AuthConfig = msgspec.field(default_factory=AuthConfig)
    plans: PlansConfig = msgspec.field(default_factory=PlansConfig)
    uploads: UploadsConfig = msgspec.field(default_factory=UploadsConfig)
    files: FilesConfig = msgspec.field(default_factory=FilesConfig)
    push: PushConfig = msgspec.field(default_factory=PushConfig)
    sync: SyncConfig = msgspec.field(default_factory=SyncConfig)
    queue: QueueConfig = msgspec.field(default_factory=QueueConfig)

    @property
    def data_path(self) -> Path:
        return Path(self.storage.data_dir)


def _dec_hook(kind: type, value: Any) -> Any:
    if kind is ByteSize:
        return ByteSize(parse_size(value))
    if kind is Seconds:
        return Seconds(parse_duration(value))
    raise NotImplementedError(kind)


def _enc_hook(value: Any) -> Any:
    if isinstance(value, ByteSize):
        return int(value)
    if isinstance(value, Seconds):
        return float(value)
    raise NotImplementedError(type(value))


def _key_path(message: str) -> str:
    """Turn msgspec's ``$.auth.signup`` / ``unknown field `x``` into ``auth.signup`` / ``x``."""
    match = re.search(r"at `\$\.?([^`]*)`", message)
    where = match.group(1) if match else ""
    where = where.replace("plans.tiers.", "plans.")
    field = re.search(r"(?:unknown|missing required) field `([^`]*)`", message)
    if field:
        return f"{where}.{field.group(1)}" if where else field.group(1)
    return where or "(top level)"


def _restructure(raw: Mapping[str, Any]) -> dict[str, Any]:
    """``[plans.free]`` tables sit beside ``plans.default`` in TOML; move them under ``tiers``."""
    data = dict(raw)
    plans = data.get("plans")
    if isinstance(plans, Mapping):
        scalar = {k: v for k, v in plans.items() if not isinstance(v, Mapping)}
        tiers = {name: msgspec.to_builtins(plan, enc_hook=_enc_hook) for name, plan in _default_plans().items()}
        for name, table in plans.items():
            if isinstance(table, Mapping):
                try:
                    plan = msgspec.convert({**tiers.get(name, {}), **table}, PlanConfig, dec_hook=_dec_hook)
                except msgspec.ValidationError as exc:
                    raise ConfigError(f"config key plans.{name}.{_key_path(str(exc))}: {exc}") from None
                tiers[name] = msgspec.to_builtins(plan, enc_hook=_enc_hook)
        scalar["tiers"] = tiers
        data["plans"] = scalar
    storage = data.get("storage")
    if isinstance(storage, Mapping):
        data["storage"] = _storage_tables(storage)
    push = data.get("push")
    if isinstance(push, Mapping):
        # ``[push.<name>]`` tables belong to their providers; ``[push] options`` is not a key.
        if "options" in push:
            raise ConfigError("config key push.options: put each provider's options in its own [push.<name>] table")
        scalar = {k: v for k, v in push.items() if not isinstance(v, Mapping)}
        scalar["options"] = {k: dict(v) for k, v in push.items() if isinstance(v, Mapping)}
        data["push"] = scalar
    return data


def _storage_tables(storage: Mapping[str, Any]) -> dict[str, Any]:
    """``[storage.<backend>]`` (``[storage.s3]``) is the backend's options table, like ``[storage.options]``."""
    backend = storage.get("backend", StorageConfig.backend)
    named = {k: v for k, v in storage.items() if isinstance(v, Mapping) and k != "options"}
    result = {k: v for k, v in storage.items() if k not in named}
    for name, table in named.items():
        if name != backend:
            raise ConfigError(
                f"config key storage.{name}: a [storage.{name}] table, but storage.backend is {backend!r} "
                f"(the options of the backend in use go in [storage.{backend}] or [storage.options])"
            )
        if "options" in storage:
            raise ConfigError(
                f"config key storage.{name}: give the options in [storage.{name}] or [storage.options], not both"
            )
        result["options"] = dict(table)
        result["options_table"] = name
    return result


def config_from_mapping(raw: Mapping[str, Any]) -> Config:
    """Decode and check a parsed TOML document; raises ``ConfigError`` naming the key."""
    try:
        config = msgspec.convert(_restructure(raw), Config, dec_hook=_dec_hook)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"config key {_key_path(str(exc))}: {exc}") from None
    if config.plans.default not in config.plans.tiers:
        raise ConfigError(f"config key plans.default: no plan named {config.plans.default!r}")
    _check_bind(config.server.bind, "server.bind")
    chunk = config.uploads.default_chunk_size
    if not MIN_CHUNK_SIZE <= chunk <= MAX_CHUNK_SIZE:
        raise ConfigError(f"config key uploads.default_chunk_size: must be between 64KiB and 64MiB, not {int(chunk)}")
    single = config.uploads.max_single_request_size
    if not 0 <= single <= MAX_SINGLE_REQUEST_SIZE:
        raise ConfigError(f"config key uploads.max_single_request_size: must be at most 64MiB, not {int(single)}")
    return config


def _check_bind(bind: str, key: str) -> None:
    host, sep, port = bind.rpartition(":")
    if not sep or not host or ascii_int(port) is None or not 0 <= int(port) < 65536:
        raise ConfigError(f"config key {key}: expected HOST:PORT, got {bind!r}")


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    data_dir: str | None = None,
    bind: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Load ``path`` (or ``$VAULT_CONFIG``), then apply env vars, then command-line overrides."""
    env = os.environ if environ is None else environ
    path = path or env.get("VAULT_CONFIG") or None
    raw: dict[str, Any] = {}
    if path:
        try:
            with open(path, "rb") as fh:
                raw = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    config = config_from_mapping(raw)
    data_dir = data_dir or env.get("VAULT_DATA_DIR") or None
    bind = bind or env.get("VAULT_BIND") or None
    if data_dir:
        config.storage.data_dir = data_dir
    if bind:
        _check_bind(bind, "--bind")
        config.server.bind = bind
    return config
