"""Progress bars with bytes/s and ETA (rich) on a terminal; nothing at all when not on one."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

SMALL = 256 * 1024  # files below this get no bar of their own (hundreds of photos' thumbnails)


class Bars:
    """The SDK's ``Progress`` drawn as one bar per file in flight, plus a total."""

    def __init__(self, console: Console) -> None:
        self.view = Progress(
            TextColumn("{task.description}", justify="left"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        )
        self.total = self.view.add_task("total", total=0)
        self.tasks: dict[str, TaskID] = {}

    def __enter__(self) -> Bars:
        self.view.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.view.stop()

    def start(self, key: str, label: str, total: int) -> None:
        task = self.view.tasks[self.total]
        self.view.update(self.total, total=(task.total or 0) + total)
        if total >= SMALL:
            self.tasks[key] = self.view.add_task(label[-40:], total=total)

    def advance(self, key: str, n: int) -> None:
        self.view.advance(self.total, n)
        task = self.tasks.get(key)
        if task is not None:
            self.view.advance(task, n)

    def finish(self, key: str) -> None:
        task = self.tasks.pop(key, None)
        if task is not None:
            self.view.remove_task(task)
