"""What this CPU offers a training loop: usable cores (affinity and cgroup quota) and bf16 support.

`os.cpu_count()` reports the host's cores, not the ones this process may use: inside a container
with an affinity mask or a CFS quota it over-subscribes, and intra-op threads then fight over
too few cores. Inter-op parallelism buys nothing for one small encoder, so it is pinned to 1.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

BF16_FLAGS = ("amx_bf16", "avx512_bf16")


def cgroup_cpu_limit(root: str | Path = "/sys/fs/cgroup") -> float | None:
    """CPUs allowed by a cgroup quota (v2 `cpu.max`, v1 `cfs_quota_us/cfs_period_us`), None if unlimited."""
    root = Path(root)
    v2 = root / "cpu.max"
    try:
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


def usable_cpus() -> int:
    """min(affinity mask, cgroup quota rounded up), at least 1."""
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        count = os.cpu_count() or 1
    limit = cgroup_cpu_limit()
    if limit is not None:
        count = min(count, max(1, math.ceil(limit)))
    return max(1, count)


_configured = False


def configure_threads(num_threads: int | None = None) -> int:
    """Intra-op threads = usable cores (or `num_threads`); inter-op threads 1. Returns the intra-op count."""
    import torch

    global _configured
    threads = num_threads or usable_cpus()
    torch.set_num_threads(threads)
    if not _configured:
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # already set, or parallel work already started in this process
            pass
        _configured = True
    return threads


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_has_fast_bf16() -> bool:
    """AMX or AVX-512-BF16: only then is bf16 autocast faster than fp32 on CPU."""
    return bool(cpu_flags() & set(BF16_FLAGS))


def resolve_bf16(setting: str) -> bool:
    """`auto` → bf16 only where the CPU has native bf16 instructions; `on`/`off` force it."""
    if setting not in ("auto", "on", "off"):
        raise ValueError(f"bf16 must be auto, on or off (got {setting!r})")
    return setting == "on" or (setting == "auto" and cpu_has_fast_bf16())


def single_threaded_blas() -> None:
    """Run numpy's BLAS (OpenBLAS/MKL) on one thread in this process, even after numpy was imported.

    A serving worker's post-processing multiplies a few feature rows by a 384 x 384 matrix (the
    Mahalanobis score): tens of microseconds on one thread. With BLAS's default one thread per core, that
    call waits for helper threads that ONNX Runtime and the event loop keep off the cores, and under load
    it took as long as the model call. `OPENBLAS_NUM_THREADS` only counts before numpy is first imported;
    threadpoolctl changes the running library.
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")
