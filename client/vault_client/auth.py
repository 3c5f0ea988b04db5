"""Signing in with device info, and refreshing tokens with rotation.

Every refresh rotates: the token presented stops working and the answer carries the next one.
When that answer is lost (connection cut after the node rotated), the client presents the same
token again: the node grants a retry within ``[auth] refresh_retry_grace`` (10 s by default)
while the new token is unused, so the retry is made at once, a few times, with short backoff.
The pair is written to the state before it is used, so a killed process keeps a working token.
"""

from __future__ import annotations

import base64
import json
import platform
import secrets
import socket
import time

import msgspec
import trio

from vault_client import __version__, wire
from vault_client.errors import AuthError, NotLoggedIn
from vault_client.retry import RetryPolicy
from vault_client.session import Session
from vault_client.state import State

_CREDENTIALS = "credentials"
_DEVICE_ID = "device_id"
# Within the node's default 10 s grace: a lost refresh answer is retried quickly.
REFRESH_RETRY = RetryPolicy(attempts=5, base=0.2, cap=2.0)
RENEW_AHEAD = 60.0  # seconds before expiry an access token is renewed anyway


class Credentials(msgspec.Struct, kw_only=True):
    base_url: str
    email: str
    user_id: str
    device_id: str  # the app's own deviceInfo.deviceId (stable per state file)
    node_device_id: str  # the node's device_… id
    device_name: str
    access_token: str
    refresh_token: str
    received_at: float | None = None  # this machine's time when the access token arrived


def device_info(state: State, *, model: str | None = None) -> wire.DeviceInfoBody:
    """This machine as a device: a ``deviceId`` made once and kept in the state (signing in again
    is then the same device, not a new one counted against the plan)."""
    device_id = state.get(_DEVICE_ID)
    if device_id is None:
        device_id = "vault-sync-" + secrets.token_hex(8)
        state.put(_DEVICE_ID, device_id)
    return wire.DeviceInfoBody(
        platform="web",  # the node knows android, ios and web; a desktop client is closest to web
        device_id=device_id,
        model=(model or socket.gethostname() or "computer")[:128],
        os_version=f"{platform.system()} {platform.release()}".strip()[:64],
        app_version=f"vault-sync {__version__}"[:64],
    )


def _lifetime(token: str) -> float | None:
    """``exp - iat`` of a JWT (read, not verified: only to renew it ahead of time). The lifetime,
    not ``exp`` itself, so a node whose clock is off does not make every call a refresh."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(claims["exp"]) - float(claims["iat"])
    except (IndexError, ValueError, KeyError, TypeError):
        return None


def stored_credentials(state: State) -> Credentials | None:
    found = state.get_struct(_CREDENTIALS, Credentials)
    return found if isinstance(found, Credentials) else None


class Auth:
    """The session's token source, backed by the durable state."""

    def __init__(self, state: State, session: Session) -> None:
        self.state = state
        self.session = session
        self._lock = trio.Lock()  # one refresh at a time: a second one would present a rotated token

    @property
    def credentials(self) -> Credentials | None:
        return stored_credentials(self.state)

    def require(self) -> Credentials:
        found = self.credentials
        if found is None:
            raise NotLoggedIn("not signed in: run `vault-sync login` (or Client.sign_in) first")
        return found

    async def sign_in(
        self, email: str, password: str, *, name: str | None = None, model: str | None = None
    ) -> Credentials:
        info = device_info(self.state, model=model)
        body = wire.RegisterBody(email=email, password=password, device_info=info, name=name)
        answer: wire.AuthRegisterAnswer = await self.session.call(wire.POST_AUTH_REGISTER, body)
        credentials = Credentials(
            base_url=self.session.base_url,
            email=answer.user.email,
            user_id=answer.user.id,
            device_id=info.device_id,
            node_device_id=answer.device.id,
            device_name=answer.device.name,
            access_token=answer.tokens.access_token,
            refresh_token=answer.tokens.refresh_token,
            received_at=time.time(),
        )
        self.state.put_struct(_CREDENTIALS, credentials)
        return credentials

    def forget(self) -> None:
        self.state.put(_CREDENTIALS, None)

    async def access_token(self) -> str:
        credentials = self.require()
        lifetime = _lifetime(credentials.access_token)
        received = credentials.received_at
        if lifetime is not None and received is not None and time.time() - received > lifetime - RENEW_AHEAD:
            return await self.renew(credentials.access_token)
        return credentials.access_token

    async def renew(self, rejected: str) -> str:
        """A fresh access token (refreshing unless another task already did since ``rejected``)."""
        async with self._lock:
            credentials = self.require()
            if credentials.access_token != rejected:
                return credentials.access_token
            body = wire.RefreshBody(refresh_token=credentials.refresh_token, device_id=credentials.device_id)
            try:
                answer: wire.RefreshAnswer = await self.session.call(wire.POST_AUTH_REFRESH, body, retry=REFRESH_RETRY)
            except AuthError as exc:
                # TOKEN_REUSED, DEVICE_REVOKED, TOKEN_EXPIRED: this device must sign in again.
                raise NotLoggedIn(
                    f"the node no longer accepts this device's sign-in ({exc.code}): log in again"
                ) from exc
            renewed = msgspec.structs.replace(
                credentials,
                access_token=answer.tokens.access_token,
                refresh_token=answer.tokens.refresh_token,
                received_at=time.time(),
            )
            self.state.put_struct(_CREDENTIALS, renewed)
            return renewed.access_token
