"""A user's devices inside metadata transactions: registration, lookup, settings, removal.

Functions here take a ``Txn`` and never await (they run inside ``MetaStore.write`` or a snapshot),
so the sign-in flow registers a device and starts its token family in one transaction.
"""

from __future__ import annotations

import msgspec

from vault.devices.push_registrations import remove_registration
from vault.devices.records import (
    DEVICE_BY_CLIENT_ID,
    DEVICES,
    Device,
    DeviceInfo,
    client_id_key,
    device_key,
    device_name,
    user_devices_prefix,
)
from vault.devices.settings import SettingsPatch, apply_patch
from vault.ids import new_id
from vault.meta import Txn
from vault.policies import Account


class Registered(msgspec.Struct, kw_only=True):
    device: Device
    is_new: bool
    other_device_ids: list[str] = msgspec.field(default_factory=list)  # the account's devices before it


class LimitReached(msgspec.Struct, kw_only=True):
    registered: int


def list_devices(txn: Txn, user_id: str) -> list[Device]:
    devices = [device for _, device in txn.scan(DEVICES, user_devices_prefix(user_id))]
    return sorted(devices, key=lambda d: (d.registered_at, d.id))


def get_device(txn: Txn, user_id: str, device_id: str) -> Device | None:
    if "/" in device_id:
        return None
    return txn.get(DEVICES, device_key(user_id, device_id))


def find_device(txn: Txn, user_id: str, device_or_client_id: str) -> Device | None:
    """The user's device with this node id (``device_…``) or, failing that, this client
    ``deviceInfo.deviceId`` (the id the app knows)."""
    device = get_device(txn, user_id, device_or_client_id)
    if device is None:
        known_id = txn.get_bytes(DEVICE_BY_CLIENT_ID, client_id_key(user_id, device_or_client_id))
        device = get_device(txn, user_id, known_id.decode()) if known_id else None
    return device


def register_device(
    txn: Txn,
    *,
    user: Account,
    info: DeviceInfo,
    now: float,
    device_limit: int,
    session_id: str,
) -> Registered | LimitReached:
    """Register ``info`` for ``user`` with a new token family ``session_id``.

    The same client device id is the same device: its info is updated and its previous family
    replaced. A new device beyond ``device_limit`` (0 = unlimited) is refused; a new one is
    answered with the account's other devices, whom the caller warns (``vault.notifications``).
    """
    name = device_name(user.name, user.email, info.model, info.platform)
    index_key = client_id_key(user.id, info.client_id)
    known_id = txn.get_bytes(DEVICE_BY_CLIENT_ID, index_key)
    device = txn.get(DEVICES, device_key(user.id, known_id.decode())) if known_id else None
    if device is not None:
        device.name = name
        device.platform = info.platform
        device.model = info.model
        device.os_version = info.os_version
        device.app_version = info.app_version
        device.push_token = info.push_token
        device.last_active_at = now
        device.session_id = session_id
        txn.put(DEVICES, device_key(user.id, device.id), device)
        return Registered(device=device, is_new=False)
    others = list_devices(txn, user.id)
    if device_limit > 0 and len(others) >= device_limit:
        return LimitReached(registered=len(others))
    device = Device(
        id=new_id("device"),
        user_id=user.id,
        client_id=info.client_id,
        name=name,
        platform=info.platform,
        model=info.model,
        os_version=info.os_version,
        app_version=info.app_version,
        push_token=info.push_token,
        registered_at=now,
        last_active_at=now,
        session_id=session_id,
    )
    txn.put(DEVICES, device_key(user.id, device.id), device)
    txn.put_bytes(DEVICE_BY_CLIENT_ID, index_key, device.id.encode())
    return Registered(device=device, is_new=True, other_device_ids=[d.id for d in others])


def remove_device(txn: Txn, user_id: str, device_id: str) -> Device | None:
    """Delete the device, its client-id index entry and with them its push registration and
    token family (tokens of a device that does not exist are refused)."""
    device = get_device(txn, user_id, device_id)
    if device is None:
        return None
    txn.delete(DEVICES, device_key(user_id, device_id))
    remove_registration(txn, user_id, device_id)
    index_key = client_id_key(user_id, device.client_id)
    if txn.get_bytes(DEVICE_BY_CLIENT_ID, index_key) == device_id.encode():
        txn.delete_key(DEVICE_BY_CLIENT_ID, index_key)
    return device


def end_session(txn: Txn, user_id: str, device_id: str, session_id: str) -> bool:
    """Log a device out: its family stops working; the device stays registered."""
    device = get_device(txn, user_id, device_id)
    if device is None or device.session_id != session_id:
        return False
    device.session_id = ""
    txn.put(DEVICES, device_key(user_id, device_id), device)
    # A logged-out phone must not keep showing this account's notifications.
    remove_registration(txn, user_id, device_id)
    return True


def update_settings(txn: Txn, user_id: str, device_id: str, patch: SettingsPatch) -> Device | None:
    device = get_device(txn, user_id, device_id)
    if device is None:
        return None
    device.settings = apply_patch(device.settings, patch)
    txn.put(DEVICES, device_key(user_id, device_id), device)
    return device


def touch(txn: Txn, user_id: str, device_id: str, now: float) -> None:
    device = get_device(txn, user_id, device_id)
    if device is not None and now > device.last_active_at:
        device.last_active_at = now
        txn.put(DEVICES, device_key(user_id, device_id), device)


def mark_synced(txn: Txn, user_id: str, device_id: str, now: float) -> None:
    """Record that the device just fetched its changes (``syncData.lastSyncAt``)."""
    device = get_device(txn, user_id, device_id)
    if device is not None:
        device.last_sync_at = now
        txn.put(DEVICES, device_key(user_id, device_id), device)
