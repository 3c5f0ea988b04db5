"""The ``/notifications`` operations: register a device for push, list the inbox, the VAPID key."""

from __future__ import annotations

import base64

from vault import errors
from vault.clock import Clock, rfc3339
from vault.devices.push_registrations import (
    Preferences,
    QuietHours,
    Registration,
    get_registration,
    put_registration,
)
from vault.devices.registry import find_device
from vault.meta import MetaStore, Txn
from vault.notifications.quiet_hours import zone
from vault.notifications.records import NOTIFICATIONS, Notification
from vault.notifications.wire import (
    DeliveryOut,
    NotificationList,
    NotificationOut,
    NotificationQuery,
    PreferencesOut,
    QuietHoursOut,
    RegisterAnswer,
    RegisterRequest,
    WebPushKey,
)
from vault.push.provider import PushProvider, PushRegistration
from vault.push.vapid import VapidKey

# Which configured provider serves a platform when the device names none: the platform's own
# service first, then the self-hosted ones, then the development ones.
PLATFORM_PREFERENCE = {
    "android": ("fcm", "ntfy", "webpush", "webhook", "log"),
    "ios": ("apns", "webhook", "log"),
    "web": ("webpush", "webhook", "log"),
}
_BUILT_IN = frozenset(name for names in PLATFORM_PREFERENCE.values() for name in names)


class NotificationService:
    def __init__(self, meta: MetaStore, clock: Clock, providers: dict[str, PushProvider], vapid: VapidKey) -> None:
        self.meta = meta
        self.clock = clock
        self.providers = providers
        self.vapid = vapid

    def provider_for(self, platform: str, requested: str | None) -> str:
        configured = list(self.providers)
        if requested is not None:
            if requested not in self.providers:
                raise errors.ValidationError(
                    f"push provider {requested!r} is not configured on this node (configured: {', '.join(configured)})",
                    details={"field": "provider"},
                )
            return requested
        for name in PLATFORM_PREFERENCE.get(platform, ()):
            if name in self.providers:
                return name
        if not configured:
            raise errors.ValidationError("this node has no push provider configured", details={"field": "provider"})
        # A plugin's provider may serve any platform; a built-in one not in this platform's list
        # cannot (APNs takes no browser subscription): refuse clearly rather than let it fail.
        plugins = [name for name in configured if name not in _BUILT_IN]
        if plugins:
            return plugins[0]
        raise errors.ValidationError(
            f"no push provider for {platform} devices is configured on this node (configured: {', '.join(configured)})",
            details={"field": "provider"},
        )

    async def register(self, user_id: str, body: RegisterRequest) -> RegisterAnswer:
        quiet = body.preferences.quiet_hours
        if zone(quiet.timezone) is None:
            raise errors.ValidationError(
                f"unknown time zone {quiet.timezone!r} (use an IANA name such as Europe/Berlin)",
                details={"field": "preferences.quietHours.timezone"},
            )
        async with self.meta.snapshot() as txn:
            device = find_device(txn, user_id, body.device_id)
        if device is None:
            raise errors.NotFound("No such device")
        provider_name = self.provider_for(body.platform, body.provider)
        target = PushRegistration(device_id=device.id, platform=body.platform, push_token=body.push_token)
        reason = await self.providers[provider_name].check_registration(target)
        if reason is not None:
            raise errors.ValidationError(f"pushToken: {reason}", details={"field": "pushToken"})
        p = body.preferences
        registration = Registration(
            user_id=user_id,
            device_id=device.id,
            platform=body.platform,
            provider=provider_name,
            push_token=body.push_token,
            preferences=Preferences(
                uploads=p.uploads,
                shares=p.shares,
                storage=p.storage,
                security=p.security,
                quiet_hours=QuietHours(
                    enabled=quiet.enabled, start=quiet.start, end=quiet.end, timezone=quiet.timezone
                ),
            ),
            registered_at=self.clock.now(),
        )

        def write(txn: Txn) -> bool:
            if find_device(txn, user_id, device.id) is None:
                return False  # removed meanwhile: do not resurrect its registration
            put_registration(txn, registration)
            return True

        if not await self.meta.write(write):
            raise errors.NotFound("No such device")
        return registration_answer(registration)

    async def registration(self, user_id: str, device_id: str) -> Registration | None:
        async with self.meta.snapshot() as txn:
            return get_registration(txn, user_id, device_id)

    async def inbox(self, user_id: str, query: NotificationQuery) -> NotificationList:
        """The user's notifications, newest first, ``limit`` at a time."""
        prefix = f"{user_id}/".encode()
        start = _cursor_key(query.cursor, prefix)
        found: list[tuple[bytes, Notification]] = []
        async with self.meta.snapshot() as txn:
            for key, notification in txn.scan(NOTIFICATIONS, prefix, start=start, reverse=True):
                if start is not None and key >= start:
                    continue
                found.append((key, notification))
                if len(found) > query.limit:
                    break
        more = len(found) > query.limit
        page = found[: query.limit]
        cursor = _cursor(page[-1][0], prefix) if more and page else None
        return NotificationList(notifications=[_view(n) for _, n in page], has_more=more, next_cursor=cursor)

    def webpush_key(self) -> WebPushKey:
        return WebPushKey(public_key=self.vapid.public_key)


def registration_answer(r: Registration) -> RegisterAnswer:
    q = r.preferences.quiet_hours
    return RegisterAnswer(
        device_id=r.device_id,
        platform=r.platform,
        provider=r.provider,
        preferences=PreferencesOut(
            uploads=r.preferences.uploads,
            shares=r.preferences.shares,
            storage=r.preferences.storage,
            security=r.preferences.security,
            quiet_hours=QuietHoursOut(enabled=q.enabled, start=q.start, end=q.end, timezone=q.timezone),
        ),
    )


def _view(n: Notification) -> NotificationOut:
    return NotificationOut(
        id=n.id,
        category=n.category,
        title=n.title,
        body=n.body,
        created_at=rfc3339(n.created_at),
        data=n.data,
        deliveries=[
            DeliveryOut(
                device_id=d.device_id,
                status=d.status,
                attempts=d.attempts,
                provider=d.provider,
                due_at=rfc3339(d.due_at) if d.due_at else None,
                reason=d.reason,
            )
            for d in n.deliveries
        ],
    )


def _cursor(key: bytes, prefix: bytes) -> str:
    return base64.urlsafe_b64encode(key[len(prefix) :]).rstrip(b"=").decode()


def _cursor_key(cursor: str, prefix: bytes) -> bytes | None:
    if not cursor:
        return None
    try:
        tail = base64.urlsafe_b64decode(cursor.encode() + b"=" * (-len(cursor) % 4))
    except (ValueError, UnicodeEncodeError):
        tail = b""
    if not tail or b"/" not in tail or not tail.isascii():
        raise errors.ValidationError("cursor is not one this node gave out", details={"field": "cursor"})
    return prefix + tail
