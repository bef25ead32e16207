"""Label Studio as a Dagster resource: connection settings around `labeling.client.LabelStudioClient`."""

import dagster as dg
from pydantic import PrivateAttr

from labeling.client import LabelStudioClient
from labeling.ledger import LabelingLedger


class LabelStudioResource(dg.ConfigurableResource):
    """`url`, `api_key` (give it as `dg.EnvVar("LABEL_STUDIO_API_KEY")`), the project and a request timeout."""

    url: str = "http://127.0.0.1:8080"
    api_key: str = ""
    project_title: str = "MangaAssist intents"
    timeout_seconds: float = 15.0
    ledger_path: str = ""
    """The local ledger of imported message keys (default $MANGA_HOME/labeling-ledger.sqlite)."""
    _client: LabelStudioClient | None = PrivateAttr(default=None)

    def get_client(self) -> LabelStudioClient:
        if self._client is None:
            self._client = LabelStudioClient(self.url, self.api_key, self.project_title, self.timeout_seconds)
        return self._client

    def get_ledger(self) -> LabelingLedger:
        from manga_intent.home import manga_home

        return LabelingLedger(self.ledger_path or manga_home() / "labeling-ledger.sqlite")
