"""The one door to the golden set: it is read by the gate and by reports that say they are gate reports.

Nothing that chooses something (a default, a search objective, consensus folds, a calibration, a threshold,
the compiled artifact's parity and latency check) may read it: a number used to choose something is not
evidence that it works. Every project read of the golden file goes through here, so a test can instrument
this module (and the file itself) and prove the selection paths never touch it.

The one other use is decontamination: generated rows equal to a golden message are dropped before training.
That needs the messages' normalised keys only, never their labels, and chooses nothing.
"""

from __future__ import annotations

from pathlib import Path

from manga_intent.data import normalized_key
from manga_intent.shipped_data import GOLDEN, read_rows

GATE = "gate"
GATE_REPORT = "gate report"
PURPOSES = (GATE, GATE_REPORT)


class HeldOutViolation(RuntimeError):
    """Something other than the gate or a gate report asked for the golden set."""


def golden_path(path: str | Path | None = None) -> Path:
    return Path(path) if path else GOLDEN.path


def read_golden(purpose: str, path: str | Path | None = None) -> list[dict]:
    """The golden rows (text, label, segment...) for the gate or a report labelled as a gate report."""
    if purpose not in PURPOSES:
        raise HeldOutViolation(
            f"the golden set is read only by the gate and gate reports (purpose {purpose!r} is neither); "
            "choose defaults, objectives, folds, calibrations and thresholds on training/validation data"
        )
    return read_rows(golden_path(path))


def golden_text_keys(path: str | Path | None = None) -> frozenset[str]:
    """Normalised message keys of the golden set (no labels), to drop generated rows that equal one."""
    return frozenset(normalized_key(row["text"]) for row in read_rows(golden_path(path)))
