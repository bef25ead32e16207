"""dagster-aws's `S3Resource`, configured from the same environment as the service (`serving.s3`)."""

from dagster_aws.s3 import S3Resource

from serving.s3 import s3_endpoint


def s3_resource_from_env() -> S3Resource:
    """S3Resource for AWS, or for MinIO/moto when MANGA_S3_ENDPOINT is set."""
    endpoint = s3_endpoint()
    return S3Resource(endpoint_url=endpoint.endpoint_url, region_name=endpoint.region_name)
