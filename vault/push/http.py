"""Small HTTP helpers every HTTP push provider needs: reading ``Retry-After`` and a status class."""

from __future__ import annotations

from email.utils import parsedate_to_datetime

from vault.push.provider import Outcome, RegistrationGone, RetryLater

# The longest wait a service may ask for that the outbox honours as is; beyond it the outbox's
# own backoff (and its maximum age) decide, so a bogus header cannot park a delivery for a year.
MAX_RETRY_AFTER = 3600.0


def retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date), else ``None``."""
    if not value:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return min(float(int(text)), MAX_RETRY_AFTER)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return min(max(0.0, when.timestamp() - now), MAX_RETRY_AFTER)


def status_outcome(status: int, retry_after_value: str | None, now: float) -> Outcome | None:
    """The outcome every HTTP push service shares for ``status``, or ``None`` for the provider to decide.

    404 and 410 mean the subscription is gone (Web Push, UnifiedPush, APNs' 410); 429 and 5xx are
    transient, waiting for ``Retry-After`` when the service sent one.
    """
    if status in (404, 410):
        return RegistrationGone(f"HTTP {status}")
    if status == 429 or status >= 500:
        return RetryLater(f"HTTP {status}", retry_after(retry_after_value, now))
    return None
