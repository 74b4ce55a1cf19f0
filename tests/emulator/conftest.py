"""Fixtures for the emulator's self-tests: official `kubernetes` clients bound to the `kube` server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import kubernetes
import pytest


@pytest.fixture(scope="session")
def api_client(kube: Any) -> Iterator[kubernetes.client.ApiClient]:
    client = kube.api_client()
    yield client
    client.close()


@pytest.fixture
def core(api_client: kubernetes.client.ApiClient, kube_clean: Any) -> kubernetes.client.CoreV1Api:
    return kubernetes.client.CoreV1Api(api_client)


@pytest.fixture
def custom(api_client: kubernetes.client.ApiClient, kube_clean: Any) -> kubernetes.client.CustomObjectsApi:
    return kubernetes.client.CustomObjectsApi(api_client)


@pytest.fixture
def http(kube_clean: Any) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=kube_clean.url, timeout=10) as client:
        yield client
