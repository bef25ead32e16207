"""MLflow: experiment tracking through dagster-mlflow, the model registry through our resource.

dagster-mlflow's `MlFlow` gives one MLflow run per Dagster run (tagged `dagster_run_id`, so every
seed partition of a backfill is its own MLflow run) and chunked parameter logging: that is where
it fits. It falls short on the registry (versions, the `champion` alias, rejection records) and
it creates experiments without an artifact location (runs would land in ./mlruns of whatever
directory the process started in). `MlflowRegistry` covers both (the registry work — pyfunc versions,
compare-and-set alias moves, loud reads — is `serving.registry.ModelRegistry`); `mlflow_run` is
dagster-mlflow's resource with the experiment created by our registry first.
"""

from contextlib import suppress

import dagster as dg
from dagster_mlflow.resources import CONFIG_SCHEMA, MlFlow
from pydantic import PrivateAttr

from manga_intent.home import manga_home
from serving.registry import GATE_TAG, ModelRegistry, default_tracking_uri

__all__ = ["GATE_TAG", "MlflowRegistry", "mlflow_run", "mlflow_run_config"]


class MlflowRegistry(dg.ConfigurableResource):
    """Tracking URI, experiment and the registered model whose `champion`/`challenger` aliases the gate moves."""

    tracking_uri: str = ""
    artifact_location: str = ""
    experiment: str = "manga-intent"
    model_name: str = "manga-intent-classifier"
    champion_alias: str = "champion"
    challenger_alias: str = "challenger"
    ui_url: str = "http://127.0.0.1:5000"
    _registry: ModelRegistry | None = PrivateAttr(default=None)

    def resolved_tracking_uri(self) -> str:
        return self.tracking_uri or default_tracking_uri()

    def registry(self) -> ModelRegistry:
        if self._registry is None:
            self._registry = ModelRegistry(
                self.resolved_tracking_uri(), self.model_name, self.champion_alias, self.challenger_alias
            )
        return self._registry

    def client(self):
        return self.registry().client()

    def ensure_experiment(self) -> str:
        """Create the experiment with an explicit artifact location (idempotent); returns its id."""
        client = self.client()
        existing = client.get_experiment_by_name(self.experiment)
        if existing is not None:
            return existing.experiment_id
        location = self.artifact_location or (manga_home() / "mlartifacts").as_uri()
        with suppress(Exception):  # a concurrent worker may have created it first
            return client.create_experiment(self.experiment, artifact_location=location)
        return client.get_experiment_by_name(self.experiment).experiment_id

    def run_url(self, run_id: str) -> str:
        experiment_id = self.client().get_run(run_id).info.experiment_id
        return f"{self.ui_url}/#/experiments/{experiment_id}/runs/{run_id}"

    def register_candidate(self, run_id: str, compiled_dir: str, tags: dict[str, str]) -> str:
        return self.registry().register_candidate(run_id, compiled_dir, tags)

    def champion(self):
        """The champion's model version, None if there is none; registry errors raise (never "no champion")."""
        return self.registry().champion()

    def challenger(self):
        return self.registry().challenger()

    def version_tags(self, version: str) -> dict[str, str]:
        return self.registry().version_tags(version)


@dg.resource(config_schema=CONFIG_SCHEMA, required_resource_keys={"mlflow_registry"})
def mlflow_run(context) -> MlFlow:
    """dagster-mlflow's run-per-Dagster-run tracker, after our registry has set up the experiment."""
    registry: MlflowRegistry = context.resources.mlflow_registry
    registry.ensure_experiment()
    return MlFlow(context)


def mlflow_run_config(registry: MlflowRegistry) -> dict:
    return {
        "experiment_name": registry.experiment,
        "mlflow_tracking_uri": registry.resolved_tracking_uri(),
        "env": {},
        "extra_tags": {"project": "manga-intent"},
    }
