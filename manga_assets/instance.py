"""The Dagster instance the project runs under: $DAGSTER_HOME (default $MANGA_HOME/dagster) with dagster.yaml.

`python -m manga_assets.instance` prepares it and prints its path (`make dev` starts `dagster dev` there).
"""

import os
import shutil
import sys
from pathlib import Path

from manga_intent.home import manga_home

INSTANCE_CONFIG = Path(__file__).resolve().parents[1] / "dagster.yaml"


def prepare_dagster_home(home: str | Path | None = None) -> Path:
    """Create the instance directory and install the project's dagster.yaml in it (refreshed if it changed)."""
    target = Path(home or os.environ.get("DAGSTER_HOME") or manga_home() / "dagster").resolve()
    target.mkdir(parents=True, exist_ok=True)
    config = target / "dagster.yaml"
    if not config.is_file() or config.read_bytes() != INSTANCE_CONFIG.read_bytes():
        shutil.copyfile(INSTANCE_CONFIG, config)
    return target


if __name__ == "__main__":
    print(prepare_dagster_home(sys.argv[1] if len(sys.argv) > 1 else None))
