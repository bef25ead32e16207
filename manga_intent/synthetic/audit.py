"""A seeded Markdown sample of generated rows for a human to audit (labels right, tags believable)."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


# ---------------------------------------------------------------------------
# Human audit.
# ---------------------------------------------------------------------------
def _md_cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, (list, tuple)):
        value = ", ".join(str(v) for v in value)
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def write_audit_sample(
    rows: Sequence[Mapping[str, Any]], path: str | Path, k: int = 50, seed: int = 0
) -> Path:
    """Write ``k`` randomly chosen rows as a Markdown table for a human to audit.

    Reviewers spot-check that labels are right and tags are believable; a seeded
    sample keeps the audit reproducible.  Returns the written path.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be an int >= 1, got {k!r}")
    rows = list(rows)
    if not rows:
        raise ValueError("rows is empty; nothing to audit")
    picked = sorted(random.Random(seed).sample(range(len(rows)), min(k, len(rows))))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Synthetic data audit sample",
        "",
        f"{len(picked)} of {len(rows)} rows (sample seed {seed}). Check that each label is the message's "
        "primary intent, that `secondary` is right, and that every segment tag is visibly true.",
        "",
        "| # | text | label | secondary | segments | template_id |",
        "|---|------|-------|-----------|----------|-------------|",
    ]
    for i in picked:
        r = rows[i]
        lines.append(
            "| "
            + " | ".join(
                [str(i)]
                + [_md_cell(r.get(f)) for f in ("text", "label", "secondary", "segment", "template_id")]
            )
            + " |"
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
