"""``/auth/register``, ``/auth/refresh`` and ``/auth/logout``."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta
from quart import Response

from vault.api.envelope import ok
from vault.api.routing import ApiRouter, Ctx
from vault.auth.passwords import MIN_PASSWORD_LENGTH
from vault.auth.service import TokenPair
from vault.clock import rfc3339
from vault.devices.records import DeviceInfo
from vault.wire import Email, WireAnswer, WireRequest

router = ApiRouter("auth")

ClientDeviceId = Annotated[
    str, Meta(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$", description="deviceInfo.deviceId")
]


class DeviceInfoBody(WireRequest):
    platform: Literal["android", "ios", "web"]
    device_id: ClientDeviceId
    model: Annotated[str, Meta(max_length=128)] = ""
    os_version: Annotated[str, Meta(max_length=64)] = ""
    app_version: Annotated[str, Meta(max_length=64)] = ""
    push_token: Annotated[str, Meta(max_length=4096)] | None = None


class RegisterBody(WireRequest):
    email: Email
    # At least MIN_PASSWORD_LENGTH characters for a new account (checked then, with its own
    # message; a shorter one signs in to no account); every account's password has them.
    password: Annotated[str, Meta(max_length=1024, extra_json_schema={"minLength": MIN_PASSWORD_LENGTH})]
    device_info: DeviceInfoBody
    name: Annotated[str, Meta(max_length=100)] | None = None


class RefreshBody(WireRequest):
    refresh_token: Annotated[str, Meta(min_length=1, max_length=512)]
    device_id: ClientDeviceId


class AuthUser(WireAnswer):
    id: str
    email: str
    name: str


class AuthTokens(WireAnswer):
    access_token: str
    refresh_token: str
    expires_in: str


class RegisteredDevice(WireAnswer):
    id: str
    name: str
    registered_at: str


class SyncData(WireAnswer):
    last_sync_at: str | None
    pending_uploads: int
    cache_size: int


class RegisterAnswer(WireAnswer):
    user: AuthUser
    tokens: AuthTokens
    device: RegisteredDevice
    sync_data: SyncData


class RefreshAnswer(WireAnswer):
    tokens: AuthTokens


class LogoutAnswer(WireAnswer):
    logged_out: bool
    device_id: str


def client_address(ctx: Ctx) -> str:
    """The peer address of the connection (what failed-login limits count per)."""
    return ctx.request.remote_addr or "unknown"


def _tokens(pair: TokenPair) -> AuthTokens:
    return AuthTokens(access_token=pair.access_token, refresh_token=pair.refresh_token, expires_in=pair.expires_in)


@router.post("/auth/register", body=RegisterBody, response=RegisterAnswer, auth=False, envelope=False)
async def register(ctx: Ctx, body: RegisterBody) -> Response:
    """Sign in (creating the account when sign-up is open) and register this device."""
    info = body.device_info
    registration = await ctx.node.auth.register(
        email=body.email,
        password=body.password,
        name=body.name,
        info=DeviceInfo(
            client_id=info.device_id,
            platform=info.platform,
            model=info.model.strip(),
            os_version=info.os_version.strip(),
            app_version=info.app_version.strip(),
            push_token=info.push_token or None,
        ),
        address=client_address(ctx),
    )
    user, device = registration.user, registration.device
    pending = await ctx.node.queue.pending_uploads(user.id, device.id)
    answer = RegisterAnswer(
        user=AuthUser(id=user.id, email=user.email, name=user.name),
        tokens=_tokens(registration.tokens),
        device=RegisteredDevice(id=device.id, name=device.name, registered_at=rfc3339(device.registered_at)),
        sync_data=SyncData(
            last_sync_at=rfc3339(device.last_sync_at) if device.last_sync_at else None,
            pending_uploads=pending,
            cache_size=0,
        ),
    )
    return ok(**msgspec.to_builtins(answer))


@router.post("/auth/refresh", body=RefreshBody, response=RefreshAnswer, auth=False, envelope=False)
async def refresh(ctx: Ctx, body: RefreshBody) -> Response:
    """Exchange a refresh token for a new pair (the presented one stops working)."""
    pair = await ctx.node.auth.refresh(
        token=body.refresh_token, client_device_id=body.device_id, address=client_address(ctx)
    )
    return ok(tokens=_tokens(pair))


@router.post("/auth/logout", response=LogoutAnswer)
async def logout(ctx: Ctx) -> LogoutAnswer:
    """Revoke this device's tokens; the device stays registered."""
    await ctx.node.auth.logout(ctx.principal)
    return LogoutAnswer(logged_out=True, device_id=ctx.principal.device_id)
