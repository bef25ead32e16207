"""`make demo`: materialize the asset graph on embedded defaults and report the result."""

import os
import sys

import dagster as dg

from manga_assets.definitions import defs


def main() -> int:
    # with DAGSTER_HOME set (the Makefile sets it) runs are kept and show up in the UI
    instance = dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else dg.DagsterInstance.ephemeral()
    assets = [defs.get_assets_def(key) for key in defs.resolve_all_asset_keys()]
    result = dg.materialize(assets, instance=instance)
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        print(f"materialized {materialization.asset_key.to_user_string()}:")
        for name, value in materialization.metadata.items():
            if not isinstance(value, (dg.MarkdownMetadataValue, dg.JsonMetadataValue)):
                print(f"  {name}: {value.value}")
    print("\nOpen the Dagster UI:  .venv/bin/dagster dev -w workspace.yaml")
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main())
