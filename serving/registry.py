"""The MLflow model registry as the service and the gate see it: versions, the champion alias, gate tags.

Plain MLflow (no Dagster): the service follows the champion through it, and the Dagster `MlflowRegistry`
resource wraps it for registration, promotion and rejection.
"""

from __future__ import annotations

from contextlib import suppress

GATE_TAG = "gate"


class ModelRegistry:
    def __init__(
        self, tracking_uri: str, model_name: str = "manga-intent-classifier", champion_alias: str = "champion"
    ):
        self.tracking_uri, self.model_name, self.champion_alias = tracking_uri, model_name, champion_alias
        self._client = None

    def client(self):
        from mlflow import MlflowClient

        if self._client is None:
            self._client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
        return self._client

    def register_candidate(self, run_id: str, source_uri: str, tags: dict[str, str]) -> str:
        """A new model version (gate pending) for the artifacts at `source_uri`; returns its version."""
        client = self.client()
        with suppress(Exception):
            client.create_registered_model(self.model_name)
        version = client.create_model_version(
            self.model_name, source=source_uri, run_id=run_id, tags={GATE_TAG: "pending", **tags}
        )
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
        for key, value in {
            GATE_TAG: "rejected",
            "gate_reasons": "; ".join(reasons)[:5000],
            **summary,
        }.items():
            client.set_model_version_tag(self.model_name, version, key, str(value))

    def version_tags(self, version: str) -> dict[str, str]:
        return dict(self.client().get_model_version(self.model_name, version).tags)


def default_tracking_uri() -> str:
    """$MLFLOW_TRACKING_URI, else the SQLite database under $MANGA_HOME."""
    import os

    from manga_intent.home import manga_home

    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{manga_home() / 'mlflow.db'}"
