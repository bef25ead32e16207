"""The one place an S3 client is configured: endpoint (MinIO, moto, AWS) and region from the environment.

`MANGA_S3_ENDPOINT` points at an S3-compatible service (unset: AWS); `AWS_DEFAULT_REGION` (default us-east-1).
The service uses `s3_client()` directly; Dagster's `S3Resource` is built from the same `s3_endpoint()`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class S3Endpoint:
    endpoint_url: str | None
    region_name: str


def s3_endpoint() -> S3Endpoint:
    return S3Endpoint(
        os.environ.get("MANGA_S3_ENDPOINT") or None, os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
    )


def s3_client(endpoint: S3Endpoint | None = None):
    import boto3

    endpoint = endpoint or s3_endpoint()
    return boto3.client("s3", endpoint_url=endpoint.endpoint_url, region_name=endpoint.region_name)
