"""The device endpoints' operations for an authenticated user (list, settings, remove)."""

from __future__ import annotations

from vault import errors
from vault.clock import Clock
from vault.devices.activity import ActivityTracker
from vault.devices.records import Device
from vault.devices.registry import list_devices, remove_device, update_settings
from vault.devices.settings import DeviceSettings, SettingsPatch, apply_patch
from vault.meta import MetaStore


class DeviceService:
    """The device endpoints' operations for an authenticated user."""

    def __init__(self, meta: MetaStore, clock: Clock, activity: ActivityTracker) -> None:
        self.meta = meta
        self.clock = clock
        self.activity = activity

    async def for_user(self, user_id: str) -> list[Device]:
        async with self.meta.snapshot() as txn:
            return list_devices(txn, user_id)

    async def update_settings(self, user_id: str, device_id: str, patch: SettingsPatch) -> Device:
        apply_patch(DeviceSettings(), patch)  # a bad folder is refused before anything is written
        device = await self.meta.write(lambda txn: update_settings(txn, user_id, device_id, patch))
        if device is None:
            raise errors.NotFound("No such device")
        return device

    async def remove(self, user_id: str, device_id: str) -> Device:
        device = await self.meta.write(lambda txn: remove_device(txn, user_id, device_id))
        if device is None:
            raise errors.NotFound("No such device")
        self.activity.forget(device_id)
        return device
