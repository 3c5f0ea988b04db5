"""Per-device sync settings: the six keys every device has, and partial updates of them."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from vault.files.paths import FolderPath, normalize_folder
from vault.wire import WireAnswer, WireRequest

UploadQuality = Literal["original", "high", "medium", "low"]

DEFAULT_MAX_CACHE_SIZE = 1024**3
MAX_SYNC_FOLDERS = 100

Folder = FolderPath


def _default_folders() -> list[str]:
    return ["/"]


class DeviceSettings(WireAnswer):
    """A device's settings; stored and shown with all six keys."""

    auto_upload: bool = True
    background_sync: bool = True
    wifi_only: bool = True
    upload_quality: UploadQuality = "original"
    sync_folders: list[str] = msgspec.field(default_factory=_default_folders)
    max_cache_size: int = DEFAULT_MAX_CACHE_SIZE


class SettingsPatch(WireRequest):
    """``PUT /devices/{id}/settings``: any subset of the six keys; anything else is refused."""

    auto_upload: bool | UnsetType = UNSET
    background_sync: bool | UnsetType = UNSET
    wifi_only: bool | UnsetType = UNSET
    upload_quality: UploadQuality | UnsetType = UNSET
    sync_folders: Annotated[list[Folder], Meta(max_length=MAX_SYNC_FOLDERS)] | UnsetType = UNSET
    max_cache_size: Annotated[int, Meta(ge=0, le=2**63 - 1)] | UnsetType = UNSET


def apply_patch(settings: DeviceSettings, patch: SettingsPatch) -> DeviceSettings:
    """The settings with the patch's given keys applied; folders are checked and normalised
    (``ValidationError`` naming ``syncFolders``), duplicates dropped in order."""
    changes = {field: value for field in patch.__struct_fields__ if (value := getattr(patch, field)) is not UNSET}
    if "sync_folders" in changes:
        folders: list[str] = []
        for folder in changes["sync_folders"]:
            normalised = normalize_folder(folder, "syncFolders")
            if normalised not in folders:
                folders.append(normalised)
        changes["sync_folders"] = folders
    return msgspec.structs.replace(settings, **changes)
