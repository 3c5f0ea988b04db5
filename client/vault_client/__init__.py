"""MegaVault client SDK: sign-in, resumable deduplicated uploads, verified downloads, and
two-way folder sync against a MegaVault node; ``vault-sync`` is its command line.

Async on Trio (``Client``), with ``BlockingClient`` for scripts. Talks to the node only over its
HTTP API; it never imports the node's own package."""

from __future__ import annotations

__version__ = "0.1.0"
