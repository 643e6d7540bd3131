"""Durations and points in time as users type them: ``90s``, ``15m``, ``2h``, ``7d``, ISO dates."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from beadsmail.errors import InvalidInput

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
ISO_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def parse_duration(text: str, what: str = "duration") -> float:
    """Seconds in ``text``: a number with an optional unit s, m, h, d or w (``90``, ``15m``)."""
    match = _DURATION.match(str(text).lower())
    if not match:
        raise InvalidInput(f"invalid {what} {text!r}: use a number with an optional unit "
                           "s, m, h, d or w, like 90s, 15m, 2h or 7d")
    return float(match.group(1)) * UNITS[match.group(2) or "s"]


def parse_since(text: str, now: datetime | None = None) -> str:
    """A UTC ISO time from a duration ago (``2h``) or a date/time (``2026-11-23``, ``...T09:30``)."""
    now = now or datetime.now(UTC)
    if _DURATION.match(str(text).lower()):
        return iso(now - timedelta(seconds=parse_duration(text)))
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"invalid time {text!r}: give a duration ago like 2h or 7d, or an ISO "
                           "date or time like 2026-11-23 or 2026-11-23T09:30Z") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return iso(when.astimezone(UTC))


def iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime(ISO_FORMAT)


def age_seconds(stamp: str | None, now: datetime) -> float | None:
    """Seconds from an ISO record time to ``now`` (None for no time)."""
    if not stamp:
        return None
    then = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return (now - then).total_seconds()
