"""Where the embedded defaults live: everything local goes under $MANGA_HOME (default ./.manga_home)."""

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def manga_home() -> Path:
    """Root for local artifacts, the MLflow and Optuna SQLite files and the prediction log."""
    home = Path(os.environ.get("MANGA_HOME", REPO_ROOT / ".manga_home")).expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    return home
