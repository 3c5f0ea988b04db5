"""``vault-sync``'s exit codes: scripts can rely on them (the README lists them)."""

from __future__ import annotations

OK = 0  # done; nothing left to do
ERROR = 1  # something unexpected (the message says what)
USAGE = 2  # wrong arguments
NOT_SIGNED_IN = 3  # no sign-in, or the node no longer accepts it: run `vault-sync login`
OFFLINE = 4  # the node could not be reached; local changes are kept and sent next time
CONFLICTS = 5  # finished, but conflicts are open: `vault-sync conflicts`, `vault-sync resolve`
PARTIAL = 6  # finished, but the node refused some files (each is named on stderr)
STORAGE_FULL = 7  # the plan's quota or the node's disk is full
NETWORK_NOT_ALLOWED = 8  # --wifi-only and the node is reached over a metered or cellular link
INTERRUPTED = 130  # Ctrl-C
