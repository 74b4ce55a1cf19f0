"""Start the operator: load settings, connect to the API server and PostgreSQL, run kopf."""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass
from typing import Any

import kopf
import kubernetes

from livery.reconcile import ReconcileSettings
from livery.reconcile.context import Provisioner, SnapshotStorage

from .driver import KubernetesDriver
from .handlers import build_registry
from .kube import KubeClient, load_client_configuration
from .metrics import serve_metrics
from .provisioning import CachedProvisioner
from .reconciler import TenantReconciler
from .settings import OperatorSettings

logger = logging.getLogger("livery.operator")


class OperatorConfigError(ValueError):
    """The operator cannot start with these settings."""


@dataclass
class OperatorParts:
    reconciler: TenantReconciler
    registry: kopf.OperatorRegistry


def reconcile_settings(settings: OperatorSettings) -> ReconcileSettings:
    """Translate operator settings into the settings the shared steps read."""
    return ReconcileSettings(
        base_domain=settings.base_domain,
        url_scheme=settings.url_scheme,
        url_port=settings.url_port,
        control_api_url=settings.control_api_url,
        s3_bucket=settings.s3_bucket,
        s3_endpoint_url=settings.s3_endpoint_url,
        # NOTE: tenant apps on Kubernetes get no LIVERY_REDIS_URL. It may carry a password,
        # so it would have to go through the tenant secret, which nothing writes it to yet.
        extra_environment={"LIVERY_TRUSTED_PROXIES": settings.trusted_proxies} if settings.trusted_proxies else {},
    )


def default_provisioner(settings: OperatorSettings) -> Provisioner:
    from livery.database import DatabaseProvisioner

    secret = settings.tenant_database_url or settings.database_url
    if secret is None or not secret.get_secret_value():
        raise OperatorConfigError(
            "LIVERY_TENANT_DATABASE_URL: missing; the operator needs the admin URL of the tenant database server"
        )
    return DatabaseProvisioner(secret.get_secret_value())


def default_storage(settings: OperatorSettings) -> SnapshotStorage | None:
    """Open S3 or the local snapshot folder; None when neither is configured."""
    if not settings.s3_bucket and settings.files_dir is None:
        return None
    from livery.storage import open_storage

    return open_storage(settings.s3_bucket, settings.s3_endpoint_url, settings.files_dir)


def connection_info(kubeconfig: str | None) -> tuple[KubeClient, kopf.ConnectionInfo]:
    """Load credentials once and share them between the driver's client and kopf."""
    try:
        configuration = load_client_configuration(kubeconfig)
    except (kubernetes.config.ConfigException, OSError) as error:
        raise OperatorConfigError(f"cannot load Kubernetes credentials: {error}") from None
    token = (configuration.api_key or {}).get("authorization") or (configuration.api_key or {}).get("BearerToken")
    scheme = None
    if token:
        scheme, _, token = token.partition(" ") if " " in token else ("Bearer", "", token)
    info = kopf.ConnectionInfo(
        server=configuration.host,
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
        scheme=scheme,
        token=token,
    )
    return KubeClient.from_configuration(configuration), info


def build_operator(
    settings: OperatorSettings,
    *,
    kubeconfig: str | None = None,
    provisioner: Provisioner | None = None,
    storage: SnapshotStorage | None = None,
) -> OperatorParts:
    """Assemble the reconciler and the kopf registry; collaborators default to the settings'."""
    if provisioner is None:
        provisioner = default_provisioner(settings)
    if settings.database_recheck_seconds > 0:
        provisioner = CachedProvisioner(
            provisioner, settings.database_recheck_seconds, settings.database_concurrency
        )
    client, connection = connection_info(kubeconfig)
    driver = KubernetesDriver(client, settings)
    reconciler = TenantReconciler(
        client,
        driver,
        provisioner,
        reconcile_settings(settings),
        storage if storage is not None else default_storage(settings),
        max_concurrent=settings.max_concurrent_reconciles,
    )
    registry = build_registry(reconciler, resync_seconds=settings.resync_seconds, connection=connection)
    return OperatorParts(reconciler=reconciler, registry=registry)


async def run_operator(
    parts: OperatorParts,
    *,
    stop_flag: asyncio.Event | threading.Event | None = None,
    ready_flag: asyncio.Event | threading.Event | None = None,
    **kopf_options: Any,
) -> None:
    """Run kopf over every Tenant and Plan until `stop_flag` is set."""
    await kopf.operator(
        registry=parts.registry,
        clusterwide=True,
        standalone=True,
        stop_flag=stop_flag,
        ready_flag=ready_flag,
        **kopf_options,
    )


def run(settings: OperatorSettings, *, kubeconfig: str | None = None) -> None:
    """Run the operator in the foreground (the `livery operator` command)."""
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parts = build_operator(settings, kubeconfig=kubeconfig)
    try:
        serve_metrics(settings.metrics_host, settings.metrics_port)
    except OSError as exc:
        raise OperatorConfigError(exc.strerror) from None
    logger.info("operator starting; metrics on port %s", settings.metrics_port or "(disabled)")
    liveness = f"http://0.0.0.0:{settings.health_port}/healthz" if settings.health_port else None
    asyncio.run(run_operator(parts, liveness_endpoint=liveness))
    logger.info("operator stopped")
