"""Nurseries whose failure is one plain exception.

Trio gathers the errors of a nursery's tasks into an ``ExceptionGroup``. Parallel chunk uploads
or downloads that fail all fail the same way (the node went away), and callers — the sync round,
the CLI — want to catch ``NodeUnreachable`` itself: the first error is raised, the group chained.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio


def first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            return first_error(exc)
        return exc
    return group


@asynccontextmanager
async def open_nursery() -> AsyncIterator[trio.Nursery]:
    try:
        async with trio.open_nursery() as nursery:
            yield nursery
    except BaseExceptionGroup as group:
        raise first_error(group) from group
