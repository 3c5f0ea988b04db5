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


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks")
    ] + [("keepcost", ctypes.c_size_t)]


_libc_handle: ctypes.CDLL | bool | None = False


def _libc() -> ctypes.CDLL | None:
    global _libc_handle
    if _libc_handle is False:
        _libc_handle = None
        name = ctypes.util.find_library("c") if sys.platform.startswith("linux") else None
        if name is not None:
            try:
                libc = ctypes.CDLL(name)
                libc.malloc_trim.argtypes = [ctypes.c_size_t]
                libc.mallinfo2.restype = _MallInfo2
                _libc_handle = libc
            except (OSError, AttributeError):  # not glibc, or older than 2.33 (no mallinfo2)
                pass
    return _libc_handle if isinstance(_libc_handle, ctypes.CDLL) else None


def heap_free_bytes() -> int | None:
    """Bytes malloc holds free in its arenas (glibc's ``mallinfo2().fordblks``); None off glibc."""
    libc = _libc()
    return None if libc is None else int(libc.mallinfo2().fordblks)


def trim_heap(above: int = 16 * 1024 * 1024) -> bool:
    """Give the free pages of malloc's arenas back to the system (``malloc_trim``) when more than
    ``above`` bytes are free in them; True when it trimmed.

    glibc returns freed memory only from the top of an arena: the upload pieces (about 1 MiB
    each) freed below it stay in the process. With fifty uploads stalled mid-chunk, malloc held
    98 MB free against 27 MB in use (RssAnon 158 MB), and kept it after they closed."""
    libc = _libc()
    if libc is None:
        return False
    if int(libc.mallinfo2().fordblks) <= above:
        return False
    libc.malloc_trim(0)
    return True
