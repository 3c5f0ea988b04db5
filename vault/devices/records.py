"""Device records as stored in the metadata store, and their keys."""

from __future__ import annotations

import msgspec

from vault.devices.settings import DeviceSettings
from vault.meta import RawTable, Table


class DeviceInfo(msgspec.Struct, kw_only=True, frozen=True):
    """What a phone tells about itself when it registers."""

    client_id: str  # deviceInfo.deviceId: stable per app install, chosen by the client
    platform: str
    model: str = ""
    os_version: str = ""
    app_version: str = ""
    push_token: str | None = None


class Device(msgspec.Struct, kw_only=True):
    id: str
    user_id: str
    client_id: str
    name: str
    platform: str
    model: str
    os_version: str
    app_version: str
    push_token: str | None = None
    registered_at: float
    last_active_at: float
    last_sync_at: float | None = None
    settings: DeviceSettings = msgspec.field(default_factory=DeviceSettings)
    # The live token family; "" once the device logged out or its family was revoked.
    session_id: str = ""


DEVICES = Table("devices", Device)
DEVICE_BY_CLIENT_ID = RawTable("device_by_client_id")  # user/app deviceId -> device id


def device_key(user_id: str, device_id: str) -> bytes:
    return f"{user_id}/{device_id}".encode()


def user_devices_prefix(user_id: str) -> bytes:
    return f"{user_id}/".encode()


def client_id_key(user_id: str, client_id: str) -> bytes:
    return f"{user_id}/{client_id}".encode()


def device_name(account_name: str, email: str, model: str, platform: str) -> str:
    """``"John's Pixel 7"``: the first word of the account's name (else the email's local part)
    and the model (else the platform)."""
    owner = account_name.split()[0] if account_name.split() else email.partition("@")[0]
    thing = model.strip() or {"ios": "iPhone", "android": "Android phone", "web": "browser"}.get(platform, platform)
    return f"{owner}'s {thing}"
