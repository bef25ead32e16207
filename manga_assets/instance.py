"""The Dagster instance the project runs under: $DAGSTER_HOME (default $MANGA_HOME/dagster) with dagster.yaml.

`python -m manga_assets.instance` prepares it and prints its path (`make dev` starts `dagster dev` there).
"""

import os
import shutil
import sys
from pathlib import Path

from manga_intent.home import manga_home

INSTANCE_CONFIG = Path(__file__).resolve().parents[1] / "dagster.yaml"

#: Steps that read-compare-move registry aliases share this pool; dagster.yaml gives every pool one slot.
REGISTRY_POOL = "manga_registry"


def prepare_dagster_home(home: str | Path | None = None) -> Path:
    """Create the instance directory, install the project's dagster.yaml in it (refreshed if it changed) and
    create its storage and the registry pool's slot once, so processes started together (a daemon, CLI
    launches) never race to migrate it or to create the pool.

    Dagster creates a pool's default slots lazily, on the first claim; two `dagster asset materialize`
    processes claiming at the same moment on SQLite could each insert a slot, and then both steps ran
    at once. Creating the slot here, before any run, leaves them nothing to race on (and repairs an
    instance where that race already left two)."""
    import dagster as dg

    target = Path(home or os.environ.get("DAGSTER_HOME") or manga_home() / "dagster").resolve()
    target.mkdir(parents=True, exist_ok=True)
    config = target / "dagster.yaml"
    if not config.is_file() or config.read_bytes() != INSTANCE_CONFIG.read_bytes():
        shutil.copyfile(INSTANCE_CONFIG, config)
    instance = dg.DagsterInstance.from_config(str(target))
    try:
        instance.event_log_storage.initialize_concurrency_limit_to_default(REGISTRY_POOL)
    finally:
        instance.dispose()
    return target


if __name__ == "__main__":
    print(prepare_dagster_home(sys.argv[1] if len(sys.argv) > 1 else None))
