"""Artifact storage: model weights, compiled graphs and dataset snapshots as files behind URIs.

Assets write large artifacts here and put the URI in their metadata; nothing heavy is pickled
through an IO manager. `LocalArtifactStore` (a directory, the embedded default) and
`S3ArtifactStore` (any S3-compatible service through dagster-aws's `S3Resource`) share one
interface, so assets never care which one is configured.
"""

import json
import shutil
from abc import abstractmethod
from pathlib import Path
from urllib.parse import unquote, urlparse

import dagster as dg
from dagster_aws.s3 import S3Resource
from pydantic import PrivateAttr

from resources.paths import manga_home


class ArtifactStore(dg.ConfigurableResource):
    """Put and get files and directories by key; `uri_for` names where a key lives."""

    @abstractmethod
    def uri_for(self, key: str) -> str: ...

    @abstractmethod
    def key_of(self, uri: str) -> str: ...

    @abstractmethod
    def put_file(self, local: str | Path, key: str) -> str: ...

    @abstractmethod
    def get_file(self, uri: str, local: str | Path) -> Path: ...

    @abstractmethod
    def list_keys(self, prefix: str) -> list[str]: ...

    def put_dir(self, local_dir: str | Path, key: str) -> str:
        """Upload every file under `local_dir` below `key/`; returns the directory URI."""
        local_dir = Path(local_dir)
        files = sorted(p for p in local_dir.rglob("*") if p.is_file())
        if not files:
            raise ValueError(f"refusing to store empty directory {local_dir}")
        for path in files:
            self.put_file(path, f"{key.rstrip('/')}/{path.relative_to(local_dir).as_posix()}")
        return self.uri_for(key.rstrip("/"))

    def get_dir(self, uri: str, local_dir: str | Path) -> Path:
        """Download a directory written by put_dir into `local_dir` (created if missing)."""
        key = self.key_of(uri).rstrip("/")
        keys = self.list_keys(key + "/")
        if not keys:
            raise FileNotFoundError(f"no artifact directory at {uri}")
        local_dir = Path(local_dir)
        for item in keys:
            self.get_file(self.uri_for(item), local_dir / item[len(key) + 1:])
        return local_dir

    def put_json(self, payload: object, key: str) -> str:
        tmp = manga_home() / "tmp" / key.replace("/", "__")
        tmp.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(payload, indent=2, ensure_ascii=False), encoding="utf-8")
        try:
            return self.put_file(tmp, key)
        finally:
            tmp.unlink(missing_ok=True)

    def get_json(self, uri: str) -> object:
        tmp = manga_home() / "tmp" / ("get__" + self.key_of(uri).replace("/", "__"))
        self.get_file(uri, tmp)
        try:
            return json.loads(tmp.read_text(encoding="utf-8"))
        finally:
            tmp.unlink(missing_ok=True)


class LocalArtifactStore(ArtifactStore):
    """Artifacts under a local directory (default: $MANGA_HOME/artifacts)."""

    root: str = ""

    def _root(self) -> Path:
        return Path(self.root) if self.root else manga_home() / "artifacts"

    def uri_for(self, key: str) -> str:
        return (self._root() / key).resolve().as_uri()

    def key_of(self, uri: str) -> str:
        path = Path(unquote(urlparse(uri).path)) if uri.startswith("file://") else Path(uri)
        try:
            return path.resolve().relative_to(self._root().resolve()).as_posix()
        except ValueError:
            raise ValueError(f"{uri} is not inside the artifact root {self._root()}") from None

    def put_file(self, local: str | Path, key: str) -> str:
        target = self._root() / key
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local, target)
        return self.uri_for(key)

    def get_file(self, uri: str, local: str | Path) -> Path:
        source = self._root() / self.key_of(uri)
        if not source.is_file():
            raise FileNotFoundError(f"no artifact at {uri}")
        local = Path(local)
        local.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, local)
        return local

    def list_keys(self, prefix: str) -> list[str]:
        base = self._root() / prefix
        if not base.is_dir():
            return []
        return sorted(p.relative_to(self._root()).as_posix() for p in base.rglob("*") if p.is_file())


class S3ArtifactStore(ArtifactStore):
    """Artifacts in `s3://bucket/prefix/...` through dagster-aws's S3Resource (MinIO, moto, AWS)."""

    s3: S3Resource
    bucket: str
    prefix: str = "manga-intent"
    _client: object = PrivateAttr(default=None)

    def _s3(self):
        if self._client is None:
            self._client = self.s3.get_client()
        return self._client

    def _full(self, key: str) -> str:
        return f"{self.prefix.strip('/')}/{key}" if self.prefix else key

    def uri_for(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._full(key)}"

    def key_of(self, uri: str) -> str:
        parsed = urlparse(uri)
        if parsed.scheme != "s3" or parsed.netloc != self.bucket:
            raise ValueError(f"{uri} is not in bucket {self.bucket}")
        full = parsed.path.lstrip("/")
        head = self.prefix.strip("/") + "/" if self.prefix else ""
        if not full.startswith(head):
            raise ValueError(f"{uri} is outside prefix {self.prefix}")
        return full[len(head):]

    def put_file(self, local: str | Path, key: str) -> str:
        self._s3().upload_file(str(local), self.bucket, self._full(key))
        return self.uri_for(key)

    def get_file(self, uri: str, local: str | Path) -> Path:
        local = Path(local)
        local.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._s3().download_file(self.bucket, self._full(self.key_of(uri)), str(local))
        except Exception as exc:  # botocore's ClientError: surface a plain "not found"
            if "404" in str(exc) or "Not Found" in str(exc):
                raise FileNotFoundError(f"no artifact at {uri}") from None
            raise
        return local

    def list_keys(self, prefix: str) -> list[str]:
        keys, token = [], None
        head = self.prefix.strip("/") + "/" if self.prefix else ""
        while True:
            kwargs = {"Bucket": self.bucket, "Prefix": self._full(prefix)}
            if token:
                kwargs["ContinuationToken"] = token
            page = self._s3().list_objects_v2(**kwargs)
            keys += [obj["Key"][len(head):] for obj in page.get("Contents", [])]
            if not page.get("IsTruncated"):
                return sorted(keys)
            token = page["NextContinuationToken"]


def s3_resource_from_env() -> S3Resource:
    """S3Resource for AWS, or for MinIO/moto when MANGA_S3_ENDPOINT is set."""
    import os

    return S3Resource(endpoint_url=os.environ.get("MANGA_S3_ENDPOINT") or None,
                      region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))


def store_from_env() -> ArtifactStore:
    """MANGA_ARTIFACT_URI=s3://bucket/prefix → S3; a path → that directory; unset → $MANGA_HOME/artifacts."""
    import os

    uri = os.environ.get("MANGA_ARTIFACT_URI", "")
    if uri.startswith("s3://"):
        parsed = urlparse(uri)
        return S3ArtifactStore(s3=s3_resource_from_env(), bucket=parsed.netloc, prefix=parsed.path.strip("/"))
    return LocalArtifactStore(root=uri)
