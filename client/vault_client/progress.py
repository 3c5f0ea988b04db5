"""How transfers report progress (the CLI draws bars from it; the SDK's default says nothing)."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def start(self, key: str, label: str, total: int) -> None:
        """A transfer of ``total`` bytes begins (``key`` names it in the calls below)."""

    def advance(self, key: str, n: int) -> None:
        """``n`` more bytes went (negative when a failed piece is sent again)."""

    def finish(self, key: str) -> None: ...


class NoProgress:
    def start(self, key: str, label: str, total: int) -> None:
        pass

    def advance(self, key: str, n: int) -> None:
        pass

    def finish(self, key: str) -> None:
        pass
