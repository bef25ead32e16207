"""How often the daemon evaluates each sensor: the code's default, or one deployment-wide override."""

import os


def tick_interval(default_seconds: int) -> int:
    """`MANGA_SENSOR_INTERVAL_SECONDS` overrides every sensor's minimum interval (a busy deployment polls
    less often; the daemon test polls every few seconds)."""
    value = os.environ.get("MANGA_SENSOR_INTERVAL_SECONDS", "").strip()
    if not value:
        return default_seconds
    seconds = int(value)
    if seconds < 1:
        raise ValueError(f"MANGA_SENSOR_INTERVAL_SECONDS must be >= 1 (got {value!r})")
    return seconds
