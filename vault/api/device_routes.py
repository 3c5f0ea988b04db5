"""``/devices``: list, change settings, remove. Only the caller's own devices are visible."""

from __future__ import annotations

from vault.api.routing import ApiRouter, Ctx
from vault.clock import rfc3339
from vault.devices.records import Device
from vault.devices.settings import DeviceSettings, SettingsPatch
from vault.wire import WireAnswer

router = ApiRouter("devices")


class DeviceView(WireAnswer):
    id: str
    name: str
    platform: str
    model: str
    os_version: str
    app_version: str
    registered_at: str
    last_active_at: str
    is_current: bool
    settings: DeviceSettings
    sync_data: DeviceSyncData


class DeviceSyncData(WireAnswer):
    last_sync_at: str | None
    pending_uploads: int  # the device's open uploads and upload operations still waiting


class DeviceList(WireAnswer):
    devices: list[DeviceView]
    current_device: str


class DeviceAnswer(WireAnswer):
    device: DeviceView


class DeviceRemoved(WireAnswer):
    removed: str


def device_view(device: Device, current_device_id: str, pending_uploads: int) -> DeviceView:
    return DeviceView(
        id=device.id,
        name=device.name,
        platform=device.platform,
        model=device.model,
        os_version=device.os_version,
        app_version=device.app_version,
        registered_at=rfc3339(device.registered_at),
        last_active_at=rfc3339(device.last_active_at),
        is_current=device.id == current_device_id,
        settings=device.settings,
        sync_data=DeviceSyncData(
            last_sync_at=rfc3339(device.last_sync_at) if device.last_sync_at else None,
            pending_uploads=pending_uploads,
        ),
    )


@router.get("/devices", response=DeviceList)
async def list_devices(ctx: Ctx) -> DeviceList:
    """The account's registered devices; ``isCurrent`` marks the calling one."""
    current = ctx.principal.device_id
    user_id = ctx.principal.user_id
    devices = await ctx.node.devices.for_user(user_id)
    views = [device_view(d, current, await ctx.node.queue.pending_uploads(user_id, d.id)) for d in devices]
    return DeviceList(devices=views, current_device=current)


@router.put("/devices/<device_id>/settings", body=SettingsPatch, response=DeviceAnswer)
async def update_settings(ctx: Ctx, body: SettingsPatch, device_id: str) -> DeviceAnswer:
    """Change some of a device's settings; the answer holds all six."""
    user_id = ctx.principal.user_id
    device = await ctx.node.devices.update_settings(user_id, device_id, body)
    pending = await ctx.node.queue.pending_uploads(user_id, device.id)
    return DeviceAnswer(device=device_view(device, ctx.principal.device_id, pending))


@router.delete("/devices/<device_id>", response=DeviceRemoved)
async def remove_device(ctx: Ctx, device_id: str) -> DeviceRemoved:
    """Remove a device: its tokens and push registration stop working at once."""
    device = await ctx.node.devices.remove(ctx.principal.user_id, device_id)
    return DeviceRemoved(removed=device.id)
