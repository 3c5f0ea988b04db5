"""The ``security`` notification: a new device signed in to an account (recorded in the same
transaction that registered it, for the account's other devices)."""

from __future__ import annotations

from vault.devices.records import Device
from vault.meta import Txn
from vault.notifications.records import record_notification

NEW_DEVICE_TITLE = "New device login detected"


def record_new_device(txn: Txn, device: Device, other_device_ids: list[str], now: float) -> None:
    if not other_device_ids:
        return  # the account's first device has nobody to warn
    record_notification(
        txn,
        user_id=device.user_id,
        category="security",
        title=NEW_DEVICE_TITLE,
        body=f"{device.name} signed in to your account. If this was not you, remove it.",
        now=now,
        device_ids=other_device_ids,
        data={"deviceId": device.id, "deviceName": device.name, "platform": device.platform},
        exclude_device_id=device.id,
    )
