"""Sign-in, token refresh, logout and per-request authentication.

``register`` creates or checks the account, registers the device and starts its token family in
one metadata transaction. ``authenticate`` runs on every bearer request: it verifies the JWT (its
signature once per token, ``VerifiedTokens``; expiry every time) and then reads the device record,
so a removed or logged-out device is refused at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import trio

from vault import errors
from vault.auth import accounts, refresh
from vault.auth.passwords import MIN_PASSWORD_LENGTH, Passwords
from vault.auth.ratelimit import LoginLimiter
from vault.auth.records import RefreshToken, User
from vault.auth.tokens import AccessClaims, KeyRing, VerifiedTokens, sign_access_token, token_kid
from vault.clock import Clock
from vault.config import Config
from vault.devices import registry as devices
from vault.devices.activity import ActivityTracker
from vault.devices.records import Device, DeviceInfo
from vault.ids import new_id
from vault.meta import MetaStore, Txn
from vault.notifications.security import record_new_device
from vault.offload import Offload
from vault.policies import Account, PlanPolicy
from vault.principal import Principal
from vault.units import format_duration

log = logging.getLogger(__name__)

# Expired token records are kept a while so a late client hears TOKEN_EXPIRED rather than
# UNAUTHORIZED, then pruned (checked at most hourly, on a refresh; no timer runs for it).
_KEEP_EXPIRED_RECORDS = 30 * 86400
_PRUNE_EVERY = 3600
# An unknown ``kid`` re-reads the key file at most this often (real seconds), so forged kids
# cannot turn into a file read per request.
_UNKNOWN_KID_RELOAD_INTERVAL = 1.0


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: str  # e.g. "7d"


@dataclass(frozen=True)
class Registration:
    user: User
    device: Device
    tokens: TokenPair
    is_new_device: bool


class AuthService:
    """Accounts, devices' token families and access tokens of one node."""

    def __init__(
        self,
        config: Config,
        meta: MetaStore,
        clock: Clock,
        keys_path: Path,
        policy: PlanPolicy,
        activity: ActivityTracker,
        passwords: Passwords | None = None,
        offload: Offload | None = None,
    ) -> None:
        self.config = config
        self.meta = meta
        self.clock = clock
        self.policy = policy
        self.activity = activity
        self.offload = offload or Offload()
        self.keys = KeyRing(keys_path)
        self.passwords = passwords or Passwords(config.auth.max_concurrent_hashes)
        self.limiter = LoginLimiter(config.auth.max_failed_logins_per_minute)
        self.lifetimes = refresh.Lifetimes(
            access_ttl=float(config.auth.access_token_ttl),
            refresh_ttl=float(config.auth.refresh_token_ttl),
            grace=float(config.auth.refresh_retry_grace),
        )
        self._last_prune = 0.0
        self._last_kid_reload = 0.0
        self._verified = VerifiedTokens()

    async def open(self) -> None:
        """Load (or create, mode 0600) the key ring and prepare the dummy hash."""
        await trio.to_thread.run_sync(self.keys.load_or_create, self.clock.now())
        await self.passwords.prepare()
        await self._maybe_prune(self.clock.now())

    # -- sign-in --------------------------------------------------------------------------------

    async def register(
        self, *, email: str, password: str, name: str | None, info: DeviceInfo, address: str
    ) -> Registration:
        email = accounts.normalise_email(email)
        self._admit(address, email)
        user = await self._sign_in(email, password, name, address)
        account = user.account()
        limit = await self.policy.device_limit(account)
        kid, _ = await self._signing_key()
        secret = refresh.new_secret()
        session_id = new_id("session")
        now = self.clock.now()

        def write(txn: Txn) -> tuple[devices.Registered | devices.LimitReached, RefreshToken | None]:
            current = accounts.get_user(txn, user.id) or user
            outcome = devices.register_device(
                txn, user=current.account(), info=info, now=now, device_limit=limit, session_id=session_id
            )
            if isinstance(outcome, devices.LimitReached):
                return outcome, None
            if outcome.is_new:
                record_new_device(txn, outcome.device, outcome.other_device_ids, now)
            record = refresh.new_record(
                device=outcome.device, family_id=session_id, now=now, kid=kid, lifetimes=self.lifetimes
            )
            refresh.issue(txn, secret, record)
            return outcome, record

        outcome, record = await self.meta.write(write)
        if isinstance(outcome, devices.LimitReached) or record is None:
            plan = await self.policy.plan_for(account)
            raise errors.DeviceLimitReached(
                f"The {plan} plan allows {limit} devices; remove one to add this device",
                details={"limit": limit, "plan": plan},
            )
        self.activity.forget(outcome.device.id)
        tokens = await self._pair(secret, record)
        return Registration(user=user, device=outcome.device, tokens=tokens, is_new_device=outcome.is_new)

    async def _sign_in(self, email: str, password: str, name: str | None, address: str) -> User:
        """The account for ``email``: checked by password, or created when sign-up is open."""
        async with self.meta.snapshot() as txn:
            user = accounts.find_by_email(txn, email)
        if user is None:
            if self.config.auth.signup != "open":
                async with self._attempt(address, email) as admit:
                    await self.passwords.burn(password, admit=admit)
                    self.limiter.record_failure(address, email, self.clock.now())
                raise errors.SignupDisabled("No account with this email, and sign-up is closed")
            if len(password) < MIN_PASSWORD_LENGTH:
                raise errors.ValidationError(
                    f"password must be at least {MIN_PASSWORD_LENGTH} characters",
                    details={"field": "password"},
                )
            password_hash = await self.passwords.hash(password)
            now = self.clock.now()
            created = await self.meta.write(
                lambda txn: accounts.create_user(
                    txn,
                    email=email,
                    name=(name or "").strip(),
                    password_hash=password_hash,
                    plan=self.config.plans.default,
                    now=now,
                )
            )
            if created.password_hash == password_hash:
                return created
            user = created  # someone created it a moment ago: check the password like any login
        async with self._attempt(address, email) as admit:
            correct = await self.passwords.verify(user.password_hash, password, admit=admit)
            if correct:
                self.limiter.record_success(email)
            else:
                self.limiter.record_failure(address, email, self.clock.now())
        if not correct:
            raise errors.InvalidCredentials()
        if self.passwords.needs_rehash(user.password_hash):
            old_hash, new_hash = user.password_hash, await self.passwords.hash(password)
            await self.meta.write(lambda txn: accounts.replace_password_hash(txn, user.id, old_hash, new_hash))
            user.password_hash = new_hash
        return user

    def _admit(self, address: str, email: str) -> None:
        """Refuse while the address or the account has too many recent failures."""
        wait = self.limiter.retry_after(address, email, self.clock.now())
        if wait is not None:
            raise errors.RateLimitExceeded(wait, "Too many failed sign-in attempts; try again later")

    @asynccontextmanager
    async def _attempt(self, address: str, email: str) -> AsyncIterator[Callable[[], None]]:
        """One password check: ``admit`` (called once a hashing slot is free) reserves its place in
        the failure limit, so parallel attempts cannot all slip in under it; the place is given
        back when the block ends, after the outcome was recorded."""
        reserved = False

        def admit() -> None:
            nonlocal reserved
            wait = self.limiter.admit(address, email, self.clock.now())
            if wait is not None:
                raise errors.RateLimitExceeded(wait, "Too many failed sign-in attempts; try again later")
            reserved = True

        try:
            yield admit
        finally:
            if reserved:
                self.limiter.finish(address, email)

    # -- tokens ---------------------------------------------------------------------------------

    async def refresh(self, *, token: str, client_device_id: str, address: str) -> TokenPair:
        now = self.clock.now()
        wait = self.limiter.by_address.retry_after(address, now)
        if wait is not None:
            raise errors.RateLimitExceeded(wait, "Too many failed attempts; try again later")
        presented = refresh.decode_token(token)
        if presented is None:
            self.limiter.by_address.record_failure(address, now)
            raise errors.Unauthorized("Invalid refresh token")
        kid, _ = await self._signing_key()
        successor = refresh.new_secret()
        now = self.clock.now()
        result = await self.meta.write(
            lambda txn: refresh.rotate(
                txn,
                presented=presented,
                successor=successor,
                client_device_id=client_device_id,
                now=now,
                kid=kid,
                lifetimes=self.lifetimes,
            )
        )
        if result.outcome in ("unknown", "wrong_device"):
            self.limiter.by_address.record_failure(address, now)
            raise errors.Unauthorized("Invalid refresh token for this device")
        if result.outcome == "expired":
            raise errors.TokenExpired("Refresh token has expired; sign in again")
        if result.outcome == "revoked":
            raise errors.DeviceRevoked("This device's session was revoked; sign in again")
        if result.outcome == "reused":
            log.warning("refresh token reuse detected; token family revoked")
            raise errors.TokenReused("Refresh token was already used; this device was signed out")
        assert result.record is not None
        if result.outcome == "retried":
            successor = refresh.unseal(result.sealed, presented)
            if refresh.token_hash(successor) != result.successor_hash:
                raise errors.Unauthorized("Invalid refresh token")
        await self._maybe_prune(now)
        return await self._pair(successor, result.record)

    async def logout(self, principal: Principal) -> None:
        """Revoke the calling device's token family; the device stays registered."""
        await self.meta.write(
            lambda txn: devices.end_session(txn, principal.user_id, principal.device_id, principal.session_id)
        )

    async def authenticate(self, authorization: str | None) -> Principal:
        """The caller of a bearer request; refuses tokens of removed or logged-out devices."""
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise errors.Unauthorized("Missing bearer token")
        kid = token_kid(token)
        if self.keys.key(kid) is None:
            await self._reload_keys_for_unknown_kid()
        now = self.clock.now()
        claims = self._verified.verify(token, self.keys.key, now)
        async with self.meta.snapshot() as txn:
            device = devices.get_device(txn, claims.user_id, claims.device_id)
        if device is None or not device.session_id or device.session_id != claims.session_id:
            raise errors.DeviceRevoked()
        if self.activity.due(device.id, now, device.last_active_at):
            await self.meta.write(lambda txn: devices.touch(txn, claims.user_id, claims.device_id, now))
        return Principal(user_id=claims.user_id, device_id=claims.device_id, session_id=claims.session_id)

    @property
    def expires_in(self) -> str:
        return format_duration(self.lifetimes.access_ttl)

    async def _pair(self, secret: bytes, record: RefreshToken) -> TokenPair:
        key = self.keys.key(record.access_kid)
        if key is None:
            raise errors.Unauthorized("Signing key is no longer available; sign in again")
        claims = AccessClaims(
            user_id=record.user_id,
            device_id=record.device_id,
            session_id=record.family_id,
            token_id=record.access_jti,
            issued_at=record.access_iat,
            expires_at=record.access_exp,
        )
        return TokenPair(
            access_token=sign_access_token(claims, record.access_kid, key),
            refresh_token=refresh.encode_token(secret),
            expires_in=self.expires_in,
        )

    async def _signing_key(self) -> tuple[str, bytes]:
        """The current key, after picking up a rotation made by ``vault keys rotate``."""
        await trio.to_thread.run_sync(self.keys.reload_if_changed)
        kid = self.keys.current_kid
        key = self.keys.key(kid)
        assert key is not None
        return kid, key

    async def _reload_keys_for_unknown_kid(self) -> None:
        started = time.monotonic()
        if started - self._last_kid_reload < _UNKNOWN_KID_RELOAD_INTERVAL:
            return
        self._last_kid_reload = started
        await trio.to_thread.run_sync(self.keys.reload_if_changed)

    async def _maybe_prune(self, now: float) -> None:
        if now - self._last_prune < _PRUNE_EVERY:
            return
        self._last_prune = now
        # A scan of every refresh token: in a worker thread (vault.offload).
        stale = await self.offload.run(self._expired_keys, now - _KEEP_EXPIRED_RECORDS)
        if stale:
            removed = await self.meta.write(lambda txn: refresh.delete_keys(txn, stale))
            log.info("pruned %d expired refresh-token records", removed)

    # -- plans ----------------------------------------------------------------------------------

    def _expired_keys(self, before: float) -> list[bytes]:
        with self.meta.read() as txn:
            return refresh.expired_keys(txn, before)

    async def account(self, user_id: str) -> Account | None:
        async with self.meta.snapshot() as txn:
            user = accounts.get_user(txn, user_id)
        return None if user is None else user.account()

    async def storage_quota(self, user_id: str) -> int:
        """Bytes the user may store (0 = unlimited), asked of the plan policy each time."""
        account = await self.account(user_id) or Account(id=user_id, email="", name="", plan=self.config.plans.default)
        return await self.policy.storage_quota(account)
