"""Everything a MegaVault plugin imports, in one place: ``from vault.plugin_api import …``.

A plugin is a class in an installed package, registered under an entry-point group in that
package's ``pyproject.toml`` and named in ``vault.toml``. The built-in ``lmdb``, ``fs`` and
``memory`` backends, the ``log`` push provider and the ``plans`` policy are registered the same
way and import nothing from the node but this module, so they are worked examples.
Anything not exported here is the node's own and may change without notice.

Chunk backends (group ``vault.backends``, chosen by ``[storage] backend``)
    Subclass ``ChunkBackend`` (and ``ChunkWriter`` for its staged writes); declare the
    ``[storage.options]`` table as a ``BackendOptions`` subclass and set it as the class attribute
    ``Options``. The node decodes the table into it (a wrong key or type is refused at start,
    naming ``storage.options.<key>``) and builds ``YourBackend(DATA_DIR / "chunks", options)``.
    ``options_as(YourOptions, options)`` in the constructor also accepts a plain dict, for tools
    and tests. A backend stores bytes under an id durably and atomically and lists them; hashing,
    size limits and verification happen above it, in the node. Blocking work goes to a thread or
    an async client, never on the Trio event loop; raise ``BackendClosed`` when used while closed.
    A network store raises ``StorageUnavailable`` (an ``OSError``: retried, then answered 503)
    when it cannot be reached and ``StorageRefused`` (permanent: the node refuses to start with
    its one-line message) when it refuses the configuration; never put a secret in either.
    An LMDB-based backend can reuse the node's writer thread and map-resize gate (``LmdbWriter``,
    ``Pending``, ``ReadGate``), as the ``lmdb`` backend does. An object store, where asking
    whether a chunk exists is a request of its own, can make ``blind_put_is_cheap`` true and give
    its writers ``commit_if_absent`` (an upload that says whether the chunk was there), as the
    ``s3`` backend does: the store then puts without asking first.

Testing a backend
    Build a ``Harness`` (how to make an instance over one storage, how to damage a stored chunk,
    how to count staged leftovers; ``None`` for a hook the store cannot offer, which marks those
    checks not applicable; ``retries``/``settle`` for an eventually consistent store) and run
    every check in ``CHECKS`` with ``run_check`` (or ``run_all``); see
    ``vault.chunks.conformance``. ``MemoryBackend`` is a conforming in-memory backend (a test fake;
    ``memory_harness`` wraps it in a harness), and ``RetryingBackend``, ``LimitedBackend`` and
    ``FaultyBackend`` wrap any backend with retries and backoff, a concurrency limit, or injected
    faults and stalls.

Push providers (group ``vault.push``, listed in ``[push] providers``)
    Subclass ``PushProvider``; its ``[push.<name>]`` table is decoded into its ``Options`` (a
    ``ProviderOptions`` subclass) and passed to the constructor. ``send`` answers every message
    with an ``Outcome``: ``Delivered``, ``RetryLater``, ``RegistrationGone`` or ``Failed``; it does not raise
    for a service's answer. ``open(context)`` gets a ``ProviderContext`` (a state directory of
    its own and the node's ``VapidKey``); ``check_registration`` may refuse a token at register
    time. ``retry_after`` and ``status_outcome`` read the answers HTTP push services share.
    Retries, quiet hours and the outbox are the node's. Smoke-test with
    ``check_provider(provider)`` (``sample_context`` builds a context for your own tests);
    ``FakeProvider`` records what a node sends and answers from a script, for tests.

Plan policies (group ``vault.policies``, chosen by ``[plans] policy``)
    Subclass ``PlanPolicy``; it is built as ``YourPolicy(config)`` with the node's ``Config``
    (``config.plans.tiers`` maps plan names to ``PlanConfig``) and answers questions about an
    ``Account``; ``UNLIMITED`` (0) means no limit.
"""

from __future__ import annotations

from vault.chunks.backend import (
    BackendClosed,
    BackendOptions,
    BackendStats,
    ChunkBackend,
    ChunkWriter,
    StorageRefused,
    StorageUnavailable,
    options_as,
)
from vault.chunks.conformance import (
    CHECKS,
    Check,
    Harness,
    NotApplicable,
    check_name,
    memory_harness,
    run_all,
    run_check,
    uncovered_methods,
)
from vault.chunks.ids import DIGEST_SIZE, ChunkId, chunk_id_from_hex
from vault.chunks.memory import MemoryBackend, MemoryOptions, MemoryStorage
from vault.chunks.wrappers import BackendWrapper, FaultyBackend, LimitedBackend, RetryingBackend
from vault.config import Config, PlanConfig
from vault.lmdb_gate import ReadGate
from vault.lmdb_writer import LmdbWriter, Pending
from vault.policies import UNLIMITED, Account, PlanPolicy
from vault.push.conformance import check_provider, sample_context
from vault.push.fake import FakeProvider
from vault.push.http import retry_after, status_outcome
from vault.push.provider import (
    Delivered,
    Failed,
    Outcome,
    ProviderContext,
    ProviderOptions,
    PushMessage,
    PushProvider,
    PushRegistration,
    RegistrationGone,
    RetryLater,
)
from vault.push.vapid import VapidKey

__all__ = [
    "CHECKS",
    "DIGEST_SIZE",
    "UNLIMITED",
    "Account",
    "BackendClosed",
    "BackendOptions",
    "BackendStats",
    "BackendWrapper",
    "Check",
    "ChunkBackend",
    "ChunkId",
    "ChunkWriter",
    "Config",
    "Delivered",
    "Failed",
    "FakeProvider",
    "FaultyBackend",
    "Harness",
    "LimitedBackend",
    "LmdbWriter",
    "MemoryBackend",
    "MemoryOptions",
    "MemoryStorage",
    "NotApplicable",
    "Outcome",
    "Pending",
    "PlanConfig",
    "PlanPolicy",
    "ProviderContext",
    "ProviderOptions",
    "PushMessage",
    "PushProvider",
    "PushRegistration",
    "ReadGate",
    "RegistrationGone",
    "RetryLater",
    "RetryingBackend",
    "StorageRefused",
    "StorageUnavailable",
    "VapidKey",
    "check_name",
    "check_provider",
    "chunk_id_from_hex",
    "memory_harness",
    "options_as",
    "retry_after",
    "run_all",
    "run_check",
    "sample_context",
    "status_outcome",
    "uncovered_methods",
]
