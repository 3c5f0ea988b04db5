"""Small helpers for structured concurrency."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def single_errors() -> Iterator[None]:
    """Re-raise a nursery's group of exactly one exception as that exception.

    Trio wraps every error leaving a nursery in an ``ExceptionGroup``; callers of the store want
    ``ChunkTooLarge`` rather than a group that holds it.
    """
    try:
        yield
    except BaseExceptionGroup as group:
        while isinstance(group, BaseExceptionGroup) and len(group.exceptions) == 1:
            inner = group.exceptions[0]
            if not isinstance(inner, BaseExceptionGroup):
                raise inner from inner.__cause__
            group = inner
        raise
