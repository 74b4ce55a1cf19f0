"""Storage fixtures: a local folder and a moto S3 server on 127.0.0.1, started once per session."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from livery.storage import LocalStorage, S3Storage, Storage

S3_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "livery-test",
    "AWS_SECRET_ACCESS_KEY": "livery-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """Return the URL of a moto S3 server, with fake credentials in the environment for boto3."""
    saved = {name: os.environ.get(name) for name in S3_ENVIRONMENT}
    os.environ.update(S3_ENVIRONMENT)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture
def s3_bucket(s3_endpoint: str) -> str:
    """Create an empty bucket for one test and return its name."""
    name = f"livery-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=name)
    return name


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    """Return each backend in turn, empty."""
    if request.param == "local":
        return LocalStorage(tmp_path / "files", signing_key="test-signing-key")
    endpoint = request.getfixturevalue("s3_endpoint")
    return S3Storage(request.getfixturevalue("s3_bucket"), endpoint)
