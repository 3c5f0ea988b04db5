"""Wire structs of ``/notifications``: registration with preferences, the inbox, the VAPID key."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from msgspec import Meta, field

from vault.wire import WireAnswer, WireQuery, WireRequest

HHMM = Annotated[str, Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", description="local time, HH:MM (24 h)")]
MAX_PAGE = 100


class QuietHoursIn(WireRequest):
    enabled: bool = False
    start: HHMM = "22:00"
    end: HHMM = "07:00"
    timezone: Annotated[str, Meta(min_length=1, max_length=64, description="an IANA time zone")] = "UTC"


class PreferencesIn(WireRequest):
    uploads: bool = True
    shares: bool = True
    storage: bool = True
    security: bool = True
    quiet_hours: QuietHoursIn = field(default_factory=QuietHoursIn)


class RegisterRequest(WireRequest):
    """``POST /notifications/register``; ``deviceId`` is the client's ``deviceInfo.deviceId`` or
    the node's ``device_…`` id. ``provider`` (beyond the spec) picks the push provider."""

    device_id: Annotated[str, Meta(min_length=1, max_length=200)]
    push_token: Annotated[str, Meta(min_length=1, max_length=8192, description="token, or Web Push subscription JSON")]
    platform: Literal["android", "ios", "web"]
    preferences: PreferencesIn = field(default_factory=PreferencesIn)
    provider: Annotated[str, Meta(min_length=1, max_length=64)] | None = None


class QuietHoursOut(WireAnswer):
    enabled: bool
    start: str
    end: str
    timezone: str


class PreferencesOut(WireAnswer):
    uploads: bool
    shares: bool
    storage: bool
    security: bool
    quiet_hours: QuietHoursOut


class RegisterAnswer(WireAnswer):
    device_id: str
    platform: str
    provider: str
    preferences: PreferencesOut


class DeliveryOut(WireAnswer):
    device_id: str
    status: Literal["pending", "held", "sent", "failed", "skipped", "unregistered"]
    attempts: int
    provider: str | None
    due_at: str | None
    reason: str | None


class NotificationOut(WireAnswer):
    id: str
    category: Literal["uploads", "shares", "storage", "security"]
    title: str
    body: str
    created_at: str
    data: dict[str, Any]
    deliveries: list[DeliveryOut]


class NotificationList(WireAnswer):
    notifications: list[NotificationOut]
    has_more: bool
    next_cursor: str | None


class NotificationQuery(WireQuery):
    limit: Annotated[int, Meta(ge=1, le=MAX_PAGE, description="notifications per page")] = 50
    cursor: Annotated[str, Meta(max_length=128, description="nextCursor of the previous page")] = ""


class WebPushKey(WireAnswer):
    public_key: str  # the node's VAPID public key, base64url, uncompressed P-256 point
