"""Process memory tuning for the node (glibc only; a no-op elsewhere)."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger(__name__)

_M_ARENA_MAX = -8
# glibc gives every thread that allocates its own arena. Upload pieces of 1-4 MiB, hashed and
# written in worker threads, left freed memory stranded in each arena: anonymous memory settled
# near 170-230 MB after a few large uploads. Two arenas kept it near 65 MB with no measurable
# CPU cost (an explicit mmap threshold also flattened it, but tripled the CPU per upload).
_ARENAS = 2


def limit_malloc_arenas(arenas: int = _ARENAS) -> bool:
    """Cap glibc's malloc arenas; call before worker threads start. True when applied."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        applied = bool(libc.mallopt(_M_ARENA_MAX, arenas))
    except (OSError, AttributeError):  # not glibc (e.g. musl has no mallopt)
        return False
    if not applied:
        log.debug("mallopt(M_ARENA_MAX) was refused")
    return applied
