"""The service's prediction log as a Dagster resource: a local SQLite file or Parquet parts on S3.

Sensors and the labelling asset read it through `open()`; the service writes it through the same
`serving.prediction_log` classes without Dagster.
"""

import os
from abc import abstractmethod
from urllib.parse import urlparse

import dagster as dg
from dagster_aws.s3 import S3Resource

from resources.s3 import s3_resource_from_env
from serving.prediction_log import (
    PredictionLog,
    S3ParquetPredictionLog,
    SqlitePredictionLog,
    default_sqlite_path,
)


class PredictionLogResource(dg.ConfigurableResource):
    @abstractmethod
    def open(self) -> PredictionLog: ...


class SqlitePredictionLogResource(PredictionLogResource):
    """WAL-mode SQLite (default $MANGA_HOME/predictions.sqlite)."""

    path: str = ""

    def open(self) -> PredictionLog:
        return SqlitePredictionLog(self.path or default_sqlite_path())


class S3PredictionLogResource(PredictionLogResource):
    """Parquet parts under s3://bucket/prefix/, through the same S3Resource as the artifact store."""

    s3: S3Resource
    bucket: str
    prefix: str = "prediction-log"

    def open(self) -> PredictionLog:
        return S3ParquetPredictionLog(self.s3.get_client(), self.bucket, self.prefix)


class PostgresPredictionLogResource(PredictionLogResource):
    """A PostgreSQL table with a gap-free, commit-ordered id (see `serving.pg_prediction_log`)."""

    dsn: str
    table: str = "predictions"

    def open(self) -> PredictionLog:
        from serving.pg_prediction_log import PostgresPredictionLog

        return PostgresPredictionLog(self.dsn, self.table)


def prediction_log_from_env() -> PredictionLogResource:
    """MANGA_PREDICTION_LOG=s3://bucket/prefix → S3/Parquet; postgresql://... → PostgreSQL; a path → that
    SQLite file; unset → the default."""
    uri = os.environ.get("MANGA_PREDICTION_LOG", "")
    if uri.startswith(("postgresql://", "postgresql+psycopg2://", "postgres://")):
        return PostgresPredictionLogResource(dsn=uri)
    if uri.startswith("s3://"):
        parsed = urlparse(uri)
        return S3PredictionLogResource(
            s3=s3_resource_from_env(), bucket=parsed.netloc, prefix=parsed.path.strip("/") or "prediction-log"
        )
    return SqlitePredictionLogResource(path=uri[len("sqlite:///") :] if uri.startswith("sqlite:///") else uri)
