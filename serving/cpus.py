"""How many cores this process may really use: the affinity mask and the cgroup CPU quota, not the host's.

`os.cpu_count()` reports the host; inside a container with a CPU quota or a restricted affinity mask,
sizing workers and threads from it over-subscribes the cores and every request pays for it.
"""

from __future__ import annotations

import math
import os
from pathlib import Path


def cgroup_cpu_limit(root: str | Path = "/sys/fs/cgroup") -> float | None:
    """CPUs allowed by a cgroup quota (v2 `cpu.max`, v1 `cpu.cfs_quota_us / cpu.cfs_period_us`), or None."""
    root = Path(root)
    try:
        v2 = root / "cpu.max"
        if v2.is_file():
            quota, period = v2.read_text().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        quota_file, period_file = root / "cpu" / "cpu.cfs_quota_us", root / "cpu" / "cpu.cfs_period_us"
        if quota_file.is_file() and period_file.is_file():
            quota = int(quota_file.read_text())
            return None if quota <= 0 else quota / int(period_file.read_text())
    except (OSError, ValueError):
        return None
    return None


def allowed_cpus() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


def usable_cpus() -> int:
    """min(affinity mask, cgroup quota rounded up), at least 1."""
    count = len(allowed_cpus())
    limit = cgroup_cpu_limit()
    if limit is not None:
        count = min(count, max(1, math.ceil(limit)))
    return max(1, count)
