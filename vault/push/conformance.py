"""The conformance check a ``vault.push`` provider runs on itself (``check_provider``)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from vault.plugin_checks import expect, expect_refuses_unknown_key
from vault.push import vapid
from vault.push.provider import (
    Delivered,
    Failed,
    ProviderContext,
    ProviderOptions,
    PushMessage,
    PushProvider,
    PushRegistration,
    RegistrationGone,
    RetryLater,
)

SAMPLE_REGISTRATIONS = (
    PushRegistration(device_id="conformance-android", platform="android", push_token="conformance-token-android"),
    PushRegistration(device_id="conformance-ios", platform="ios", push_token="0" * 64),
    PushRegistration(
        device_id="conformance-web",
        platform="web",
        push_token='{"endpoint": "https://push.invalid/conformance", "keys": {"p256dh": "", "auth": ""}}',
    ),
)
SAMPLE_MESSAGES = (
    PushMessage(category="uploads", title="Upload finished", body="3 photos", created_at=0.0, data={"n": 3}),
    PushMessage(category="sync", title="", body="", created_at=0.0, silent=True),
)


def sample_context(state_dir: Path, name: str = "conformance") -> ProviderContext:
    """A ``ProviderContext`` over ``state_dir`` with a fresh VAPID key, for tests of a provider."""
    return ProviderContext(name=name, state_dir=state_dir, vapid=vapid.generate())


async def check_provider(provider: PushProvider, context: ProviderContext | None = None) -> None:
    """Smoke-test a ``vault.push`` provider: its options, open/close, and an outcome for each send.

    ``provider`` is constructed but not opened; ``context`` defaults to a throwaway state
    directory and key. The samples go to tokens no service knows, so point a real provider at a
    test endpoint; any of the three outcomes is an answer, an exception is not.
    """
    if context is None:
        with tempfile.TemporaryDirectory(prefix="vault-push-check-") as tmp:
            await check_provider(provider, sample_context(Path(tmp)))
        return
    kind = type(provider).Options
    expect(isinstance(kind, type) and issubclass(kind, ProviderOptions), "Options is not a ProviderOptions subclass")
    expect(isinstance(provider.options, kind), f"provider.options is not a {kind.__name__}")
    expect_refuses_unknown_key(kind, "provider Options")
    await provider.open(context)
    try:
        for registration in SAMPLE_REGISTRATIONS:
            reason = await provider.check_registration(registration)
            expect(reason is None or isinstance(reason, str), f"check_registration answered {reason!r}")
            for message in SAMPLE_MESSAGES:
                outcome = await provider.send(registration, message)
                where = f"send to a {registration.platform} registration"
                expect(
                    isinstance(outcome, Delivered | RetryLater | RegistrationGone | Failed), f"{where}: got {outcome!r}"
                )
                if isinstance(outcome, RetryLater):
                    expect(outcome.delay is None or outcome.delay >= 0, f"{where}: negative retry delay")
    finally:
        await provider.close()
