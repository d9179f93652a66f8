"""A real S3 API server for the tests (moto's standalone server), and private buckets on it.

The conftest fixtures ``s3_server`` (one per run) and ``s3`` (a fresh bucket,
the default storage for one test) are built on these.
"""

import logging
import uuid

import boto3
from botocore.config import Config

REGION = "us-east-1"
ACCESS_KEY = "lumaweb-test-access-key"
SECRET_KEY = "lumaweb-test-secret-key"


def start_moto_server():
    """moto's S3 API server on a free port of this machine: ``(endpoint URL, stop)``.
    ImportError without moto[server]."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not a line per request in every test's output
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return f"http://{host}:{port}", server.stop


class Bucket:
    """A new private bucket on the server at ``endpoint``, and the ways a test looks into it."""

    def __init__(self, endpoint, name=None):
        self.endpoint = endpoint
        self.name = name or f"lumaweb-test-{uuid.uuid4().hex[:16]}"
        self.client = boto3.client("s3", endpoint_url=endpoint, region_name=REGION, aws_access_key_id=ACCESS_KEY,
                                   aws_secret_access_key=SECRET_KEY, config=Config(signature_version="s3v4"))
        self.client.create_bucket(Bucket=self.name)

    @property
    def settings(self):
        """Django settings that make this bucket the media storage (as the environment would)."""
        return {
            "AWS_STORAGE_BUCKET_NAME": self.name,
            "AWS_S3_ENDPOINT_URL": self.endpoint,
            "AWS_S3_REGION_NAME": REGION,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        }

    @property
    def env(self):
        """The environment variables that do the same for a process of its own (a q cluster)."""
        return dict(self.settings)

    def keys(self, prefix=""):
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.name, Prefix=prefix)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", ()))

    def read(self, key):
        return self.client.get_object(Bucket=self.name, Key=key)["Body"].read()

    def acl_grants(self, key):
        return self.client.get_object_acl(Bucket=self.name, Key=key)["Grants"]

    def unsigned_url(self, key):
        """The object's plain address, as anyone on the internet could try it."""
        return f"{self.endpoint}/{self.name}/{key}"
