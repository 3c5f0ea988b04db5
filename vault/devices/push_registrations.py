"""Push registrations: where and how to reach one device, and what it wants to hear about.

One record per device (``user/device``): re-registering replaces it, and removing the device or
logging it out deletes it in the same transaction, so no delivery reaches a device that left.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from vault.meta import Table, Txn

Platform = Literal["android", "ios", "web"]


class QuietHours(msgspec.Struct, kw_only=True, frozen=True):
    """``start``-``end`` local time (``HH:MM``) in ``timezone``; may cross midnight."""

    enabled: bool = False
    start: str = "22:00"
    end: str = "07:00"
    timezone: str = "UTC"


class Preferences(msgspec.Struct, kw_only=True, frozen=True):
    uploads: bool = True
    shares: bool = True
    storage: bool = True
    security: bool = True
    quiet_hours: QuietHours = msgspec.field(default_factory=QuietHours)

    def wants(self, category: str) -> bool:
        return bool(getattr(self, category, False))


class Registration(msgspec.Struct, kw_only=True):
    user_id: str
    device_id: str  # the node's device id
    platform: Platform
    provider: str
    push_token: str
    preferences: Preferences
    registered_at: float


REGISTRATIONS = Table("push_registrations", Registration)


def registration_key(user_id: str, device_id: str) -> bytes:
    return f"{user_id}/{device_id}".encode()


def put_registration(txn: Txn, registration: Registration) -> None:
    txn.put(REGISTRATIONS, registration_key(registration.user_id, registration.device_id), registration)


def get_registration(txn: Txn, user_id: str, device_id: str) -> Registration | None:
    return txn.get(REGISTRATIONS, registration_key(user_id, device_id))


def remove_registration(txn: Txn, user_id: str, device_id: str) -> bool:
    """Forget the device's registration (device removed, logged out, or its token gone)."""
    return txn.delete(REGISTRATIONS, registration_key(user_id, device_id))


def user_registrations(txn: Txn, user_id: str) -> list[Registration]:
    return [r for _, r in txn.scan(REGISTRATIONS, f"{user_id}/".encode())]
