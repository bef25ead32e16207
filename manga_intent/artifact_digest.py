"""A content checksum of an artifact directory: what the registry records and the service verifies."""

from __future__ import annotations

import hashlib
from pathlib import Path


def directory_sha256(directory: str | Path) -> str:
    """sha256 over every file's relative path and bytes, in sorted order; independent of where it lies."""
    root = Path(directory)
    files = sorted(p for p in root.rglob("*") if p.is_file())
    if not files:
        raise FileNotFoundError(f"{root}: no files to checksum")
    digest = hashlib.sha256()
    for path in files:
        digest.update(f"{path.relative_to(root).as_posix()}\0{path.stat().st_size}\0".encode())
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return "sha256:" + digest.hexdigest()
