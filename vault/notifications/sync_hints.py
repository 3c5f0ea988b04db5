"""The silent "changes available" hint: a user's other devices learn to sync without polling.

Written in the transaction of each file change (a ``FileChanges`` subscriber): for every other
registered device whose provider takes silent messages, one hint waits in the outbox. A device
with a hint already waiting gets nothing more (collapsed), and a new hint is due no sooner than
``interval`` after the last one went out, so a burst of 500 photo uploads costs each phone one or
two wake-ups, not 500. A hint already being sent does not absorb later changes (the phone may
have synced before them), so those queue one more.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from vault.devices.push_registrations import registration_key, user_registrations
from vault.files.journal import JournalEntry
from vault.meta import Table, Txn
from vault.notifications.outbox import OutboxEntry, enqueue, new_entry_id


class HintState(msgspec.Struct, kw_only=True):
    waiting: str = ""  # outbox key of the hint waiting for this device, "" when none
    last_sent: float = 0.0


SYNC_HINTS = Table("push_sync_hints", HintState)


class SyncHints:
    def __init__(
        self,
        *,
        interval: float,
        providers: set[str],
        in_flight: Callable[[str], bool],
    ) -> None:
        self.interval = interval
        self.providers = providers  # the configured providers that take silent messages
        self._in_flight = in_flight  # whether the runner is sending that outbox key right now

    def on_change(self, txn: Txn, user_id: str, entry: JournalEntry) -> None:
        """``FileChanges`` subscriber: queue (or collapse into) a hint for each other device."""
        for registration in user_registrations(txn, user_id):
            if registration.device_id == entry.device_id or registration.provider not in self.providers:
                continue
            state_key = registration_key(user_id, registration.device_id)
            state = txn.get(SYNC_HINTS, state_key) or HintState()
            if state.waiting and not self._in_flight(state.waiting):
                continue
            due = max(entry.at, state.last_sent + self.interval)
            key = enqueue(
                txn,
                OutboxEntry(
                    id=new_entry_id(),
                    user_id=user_id,
                    device_id=registration.device_id,
                    kind="sync_hint",
                    category="sync",
                    title="",
                    body="",
                    data={"type": "sync"},
                    silent=True,
                    created_at=entry.at,
                    due=due,
                ),
            )
            state.waiting = key.decode()
            txn.put(SYNC_HINTS, state_key, state)


def hint_sent(txn: Txn, user_id: str, device_id: str, key: bytes, now: float) -> None:
    """The hint at ``key`` is done (sent or given up): later changes queue a new one."""
    state_key = registration_key(user_id, device_id)
    state = txn.get(SYNC_HINTS, state_key)
    if state is None:
        return
    if state.waiting == key.decode():
        state.waiting = ""
    state.last_sent = now
    txn.put(SYNC_HINTS, state_key, state)
