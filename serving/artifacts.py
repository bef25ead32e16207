"""Artifact storage without Dagster: model weights, compiled graphs and snapshots as files behind URIs.

`LocalArtifacts` (a directory, the embedded default) and `S3Artifacts` (any S3-compatible service) share
one interface. The service reads champions through it; the Dagster `ArtifactStore` resources wrap it.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path
from urllib.parse import unquote, urlparse

from manga_intent.home import manga_home


class Artifacts(ABC):
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
            self.get_file(self.uri_for(item), local_dir / item[len(key) + 1 :])
        return local_dir

    def put_json(self, payload: object, key: str) -> str:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "payload.json"
            path.write_text(json.dumps(payload, indent=2, ensure_ascii=False), encoding="utf-8")
            return self.put_file(path, key)

    def get_json(self, uri: str) -> object:
        with tempfile.TemporaryDirectory() as tmp:
            path = self.get_file(uri, Path(tmp) / "payload.json")
            return json.loads(path.read_text(encoding="utf-8"))


class LocalArtifacts(Artifacts):
    """Artifacts under a local directory (default: $MANGA_HOME/artifacts)."""

    def __init__(self, root: str | Path | None = None):
        self._root_setting = Path(root) if root else None

    def root(self) -> Path:
        return self._root_setting or manga_home() / "artifacts"

    def uri_for(self, key: str) -> str:
        return (self.root() / key).resolve().as_uri()

    def key_of(self, uri: str) -> str:
        path = Path(unquote(urlparse(uri).path)) if uri.startswith("file://") else Path(uri)
        try:
            return path.resolve().relative_to(self.root().resolve()).as_posix()
        except ValueError:
            raise ValueError(f"{uri} is not inside the artifact root {self.root()}") from None

    def put_file(self, local: str | Path, key: str) -> str:
        target = self.root() / key
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local, target)
        return self.uri_for(key)

    def get_file(self, uri: str, local: str | Path) -> Path:
        source = self.root() / self.key_of(uri)
        if not source.is_file():
            raise FileNotFoundError(f"no artifact at {uri}")
        local = Path(local)
        local.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, local)
        return local

    def list_keys(self, prefix: str) -> list[str]:
        base = self.root() / prefix
        if not base.is_dir():
            return []
        return sorted(p.relative_to(self.root()).as_posix() for p in base.rglob("*") if p.is_file())


class S3Artifacts(Artifacts):
    """Artifacts in `s3://bucket/prefix/...` through a boto3 S3 client (MinIO, moto, AWS)."""

    def __init__(self, client, bucket: str, prefix: str = "manga-intent"):
        self.client, self.bucket, self.prefix = client, bucket, prefix

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
        return full[len(head) :]

    def put_file(self, local: str | Path, key: str) -> str:
        self.client.upload_file(str(local), self.bucket, self._full(key))
        return self.uri_for(key)

    def get_file(self, uri: str, local: str | Path) -> Path:
        local = Path(local)
        local.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.client.download_file(self.bucket, self._full(self.key_of(uri)), str(local))
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
            page = self.client.list_objects_v2(**kwargs)
            keys += [obj["Key"][len(head) :] for obj in page.get("Contents", [])]
            if not page.get("IsTruncated"):
                return sorted(keys)
            token = page["NextContinuationToken"]


def artifacts_from_uri(uri: str | None) -> Artifacts:
    """`s3://bucket/prefix` → S3 (client from `serving.s3`); a path → that directory; empty → $MANGA_HOME/artifacts."""
    if uri and uri.startswith("s3://"):
        from serving.s3 import s3_client

        parsed = urlparse(uri)
        return S3Artifacts(s3_client(), parsed.netloc, parsed.path.strip("/"))
    return LocalArtifacts(uri or None)
