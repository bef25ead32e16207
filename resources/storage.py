"""Artifact storage as Dagster resources: model weights, compiled graphs and dataset snapshots behind URIs.

Assets write large artifacts here and put the URI in their metadata; nothing heavy is pickled through an
IO manager. `LocalArtifactStore` (a directory, the embedded default) and `S3ArtifactStore` (any
S3-compatible service through dagster-aws's `S3Resource`) share one interface, so assets never care which
one is configured. The work is done by `serving.artifacts`, which the service uses without Dagster.
"""

from abc import abstractmethod
from pathlib import Path
from urllib.parse import urlparse

import dagster as dg
from dagster_aws.s3 import S3Resource

from resources.s3 import s3_resource_from_env
from serving.artifacts import Artifacts, LocalArtifacts, S3Artifacts


class ArtifactStore(dg.ConfigurableResource):
    """Put and get files and directories by key; `uri_for` names where a key lives."""

    @abstractmethod
    def artifacts(self) -> Artifacts: ...

    def uri_for(self, key: str) -> str:
        return self.artifacts().uri_for(key)

    def key_of(self, uri: str) -> str:
        return self.artifacts().key_of(uri)

    def put_file(self, local: str | Path, key: str) -> str:
        return self.artifacts().put_file(local, key)

    def get_file(self, uri: str, local: str | Path) -> Path:
        return self.artifacts().get_file(uri, local)

    def list_keys(self, prefix: str) -> list[str]:
        return self.artifacts().list_keys(prefix)

    def put_dir(self, local_dir: str | Path, key: str) -> str:
        return self.artifacts().put_dir(local_dir, key)

    def get_dir(self, uri: str, local_dir: str | Path) -> Path:
        return self.artifacts().get_dir(uri, local_dir)

    def put_json(self, payload: object, key: str) -> str:
        return self.artifacts().put_json(payload, key)

    def get_json(self, uri: str) -> object:
        return self.artifacts().get_json(uri)


class LocalArtifactStore(ArtifactStore):
    """Artifacts under a local directory (default: $MANGA_HOME/artifacts)."""

    root: str = ""

    def artifacts(self) -> Artifacts:
        return LocalArtifacts(self.root or None)


class S3ArtifactStore(ArtifactStore):
    """Artifacts in `s3://bucket/prefix/...` through dagster-aws's S3Resource (MinIO, moto, AWS)."""

    s3: S3Resource
    bucket: str
    prefix: str = "manga-intent"

    def artifacts(self) -> Artifacts:
        return S3Artifacts(self.s3.get_client(), self.bucket, self.prefix)


def store_from_env() -> ArtifactStore:
    """MANGA_ARTIFACT_URI=s3://bucket/prefix → S3; a path → that directory; unset → $MANGA_HOME/artifacts."""
    import os

    uri = os.environ.get("MANGA_ARTIFACT_URI", "")
    if uri.startswith("s3://"):
        parsed = urlparse(uri)
        return S3ArtifactStore(s3=s3_resource_from_env(), bucket=parsed.netloc, prefix=parsed.path.strip("/"))
    return LocalArtifactStore(root=uri)
