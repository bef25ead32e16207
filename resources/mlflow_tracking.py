"""MLflow: experiment tracking through dagster-mlflow, the model registry through our resource.

dagster-mlflow's `MlFlow` gives one MLflow run per Dagster run (tagged `dagster_run_id`, so every
seed partition of a backfill is its own MLflow run) and chunked parameter logging: that is where
it fits. It falls short on the registry (versions, the `champion` alias, rejection records) and
it creates experiments without an artifact location (runs would land in ./mlruns of whatever
directory the process started in). `MlflowRegistry` covers both; `mlflow_run` is dagster-mlflow's
resource with the experiment created by our registry first.
"""

from contextlib import suppress

import dagster as dg
from dagster_mlflow.resources import CONFIG_SCHEMA, MlFlow
from pydantic import PrivateAttr

from resources.paths import manga_home

GATE_TAG = "gate"


def default_tracking_uri() -> str:
    return f"sqlite:///{manga_home() / 'mlflow.db'}"


class MlflowRegistry(dg.ConfigurableResource):
    """Tracking URI, experiment and the registered model whose `champion` alias the gate moves."""

    tracking_uri: str = ""
    artifact_location: str = ""
    experiment: str = "manga-intent"
    model_name: str = "manga-intent-classifier"
    champion_alias: str = "champion"
    ui_url: str = "http://127.0.0.1:5000"
    _client: object = PrivateAttr(default=None)

    def resolved_tracking_uri(self) -> str:
        return self.tracking_uri or default_tracking_uri()

    def client(self):
        from mlflow import MlflowClient

        if self._client is None:
            self._client = MlflowClient(tracking_uri=self.resolved_tracking_uri(),
                                        registry_uri=self.resolved_tracking_uri())
        return self._client

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

    def register_candidate(self, run_id: str, source_uri: str, tags: dict[str, str]) -> str:
        """A new model version (gate pending) for the artifacts at `source_uri`; returns its version."""
        client = self.client()
        with suppress(Exception):
            client.create_registered_model(self.model_name)
        version = client.create_model_version(self.model_name, source=source_uri, run_id=run_id,
                                              tags={GATE_TAG: "pending", **tags})
        return str(version.version)

    def champion(self):
        """The model version holding the champion alias, or None."""
        with suppress(Exception):
            return self.client().get_model_version_by_alias(self.model_name, self.champion_alias)
        return None

    def promote(self, version: str, summary: dict[str, str]) -> None:
        client = self.client()
        for key, value in {GATE_TAG: "passed", **summary}.items():
            client.set_model_version_tag(self.model_name, version, key, str(value))
        client.set_registered_model_alias(self.model_name, self.champion_alias, version)

    def reject(self, version: str, reasons: list[str], summary: dict[str, str]) -> None:
        client = self.client()
        for key, value in {GATE_TAG: "rejected", "gate_reasons": "; ".join(reasons)[:5000], **summary}.items():
            client.set_model_version_tag(self.model_name, version, key, str(value))

    def version_tags(self, version: str) -> dict[str, str]:
        return dict(self.client().get_model_version(self.model_name, version).tags)


@dg.resource(config_schema=CONFIG_SCHEMA, required_resource_keys={"mlflow_registry"})
def mlflow_run(context) -> MlFlow:
    """dagster-mlflow's run-per-Dagster-run tracker, after our registry has set up the experiment."""
    registry: MlflowRegistry = context.resources.mlflow_registry
    registry.ensure_experiment()
    return MlFlow(context)


def mlflow_run_config(registry: MlflowRegistry) -> dict:
    return {"experiment_name": registry.experiment, "mlflow_tracking_uri": registry.resolved_tracking_uri(),
            "env": {}, "extra_tags": {"project": "manga-intent"}}
