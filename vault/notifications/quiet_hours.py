"""Quiet hours in a device's own time zone: whether ``now`` falls inside, and when they end.

Computed with ``zoneinfo`` on the wall clock of the device's zone, so a DST change moves the end
with the clocks (``07:00`` stays ``07:00`` local, whether that is 8 or 9 hours after ``22:00``).
The tz database comes from the ``tzdata`` package when the system has none (a minimal Pi image).
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from vault.devices.push_registrations import QuietHours


def parse_hhmm(text: str) -> time | None:
    """``HH:MM`` (24-hour, two digits each) or ``None``."""
    if len(text) != 5 or text[2] != ":" or not (text[:2] + text[3:]).isascii():
        return None
    hours, minutes = text[:2], text[3:]
    if not (hours.isdigit() and minutes.isdigit()):
        return None
    h, m = int(hours), int(minutes)
    return time(h, m) if h < 24 and m < 60 else None


def zone(name: str) -> ZoneInfo | None:
    """The IANA zone ``name``, or ``None`` when the tz database does not know it."""
    if not name or len(name) > 64 or name.startswith("/") or ".." in name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def held_until(quiet: QuietHours, now: float) -> float | None:
    """When quiet hours that contain ``now`` end (a Unix time), or ``None`` outside them."""
    if not quiet.enabled:
        return None
    start, end, tz = parse_hhmm(quiet.start), parse_hhmm(quiet.end), zone(quiet.timezone)
    if start is None or end is None or tz is None or start == end:
        return None
    local = datetime.fromtimestamp(now, tz)
    clock = local.time().replace(tzinfo=None)
    if start < end:
        inside = start <= clock < end
        end_day = local.date()
    else:  # across midnight: 22:00-07:00 is inside from 22:00 on and before 07:00
        inside = clock >= start or clock < end
        end_day = local.date() + timedelta(days=1) if clock >= start else local.date()
    if not inside:
        return None
    # The wall-clock end in that zone; in a DST gap (02:30 that never happens) ``fold`` resolves
    # to the later instant, and a time in the repeated hour takes its first occurrence.
    ending = datetime.combine(end_day, end, tzinfo=tz)
    return max(now, ending.timestamp())
