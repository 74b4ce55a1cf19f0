"""Pure builders: the Kubernetes objects a tenant needs, as dicts, with no API calls.

The driver applies what these return. Every object lives in the tenant's
namespace (the Namespace itself excepted) and carries `livery.naming.labels`.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import re
from typing import Any
from urllib.parse import urlsplit

from pydantic import SecretStr

from livery import naming
from livery.drivers.base import SECRET_LOGIN_KEY, SECRET_USAGE_TOKEN, AppSpec, RouteSpec
from livery.models.config import CONFIG_FILE_NAME

from .settings import OperatorSettings

CHECKSUM_ANNOTATION = "livery.dev/config-checksum"
# SHA-256 of the tenant Secret's data: new credentials change the pod template, so the app rolls out.
SECRET_CHECKSUM_ANNOTATION = "livery.dev/secret-checksum"
# SHA-256 of LIVERY_TENANT_REDIS_URL, the value of the `tenant-redis` Secret: a new URL rolls the app out too.
REDIS_CHECKSUM_ANNOTATION = "livery.dev/redis-checksum"
SUSPENDED_ANNOTATION = "livery.dev/suspended"
CERT_ISSUER_ANNOTATION = "cert-manager.io/cluster-issuer"
# The app pod meets the "restricted" Pod Security Standard, so its namespace enforces it.
POD_SECURITY_ENFORCE_LABEL = "pod-security.kubernetes.io/enforce"
TENANT_UID_ANNOTATION = "livery.dev/tenant-uid"
CONTROL_SECRET_KEYS = (SECRET_LOGIN_KEY, SECRET_USAGE_TOKEN)
SERVICE_PORT = 80
# ExternalName Service that a suspended tenant's Ingress routes to, an alias of the control API's Service.
SUSPENSION_SERVICE_NAME = "tenant-suspended"
TLS_SECRET_NAME = "tenant-app-tls"
# Secret with the tenant app's LIVERY_REDIS_URL, made only when LIVERY_TENANT_REDIS_URL is set.
REDIS_SECRET_NAME = "tenant-redis"
REDIS_URL_KEY = "LIVERY_REDIS_URL"
NETWORK_POLICY_NAME = "tenant-isolation"
QUOTA_NAME = "tenant-quota"
LIMIT_RANGE_NAME = "tenant-limits"
# Headroom of the quota over the plan's replicas, so a rolling update can start a surge pod.
SURGE_PODS = 1
DNS_PORT = 53
POSTGRES_DEFAULT_PORT = 5432
REDIS_DEFAULT_PORT = 6379


def _metadata(tenant: str, name: str, component: str | None = None) -> dict[str, Any]:
    return {"name": name, "namespace": naming.namespace_name(tenant), "labels": naming.labels(tenant, component)}


def namespace(tenant: str, uid: str | None = None) -> dict[str, Any]:
    """Build the tenant's Namespace, where Pod Security admission enforces the restricted profile.

    `uid`, the Tenant's, marks which Tenant the namespace was made for (see `owned_by`).
    """
    labels = {**naming.labels(tenant), POD_SECURITY_ENFORCE_LABEL: "restricted"}
    metadata: dict[str, Any] = {"name": naming.namespace_name(tenant), "labels": labels}
    if uid:
        metadata["annotations"] = {TENANT_UID_ANNOTATION: uid}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": metadata}


def secret(tenant: str, data: dict[str, str], uid: str | None = None) -> dict[str, Any]:
    """Build the tenant's credentials Secret; `uid` marks the Tenant that generated them."""
    encoded = {key: base64.b64encode(value.encode()).decode() for key, value in sorted(data.items())}
    metadata = _metadata(tenant, naming.APP_SECRET_NAME, "app")
    if uid:
        metadata["annotations"] = {TENANT_UID_ANNOTATION: uid}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": metadata, "type": "Opaque", "data": encoded}


def control_secret(tenant: str, data: dict[str, str], uid: str | None = None) -> dict[str, Any]:
    """Build the Secret with the keys the control API reads: the login key and the usage token."""
    subset = {key: data[key] for key in CONTROL_SECRET_KEYS if key in data}
    obj = secret(tenant, subset, uid)
    obj["metadata"]["name"] = naming.CONTROL_SECRET_NAME
    obj["metadata"]["labels"] = naming.labels(tenant, "control")
    return obj


def owned_by(obj: dict[str, Any], tenant: str, uid: str | None, *, require_mark: bool = False) -> bool:
    """Return whether the operator made `obj` for the Tenant `tenant` with `uid`.

    An object marked with `uid` is owned. Any other object needs Livery's labels for
    `tenant`. With `uid` known, an object marked with another Tenant's uid (an earlier
    Tenant of the same name) is not owned, and an unmarked one is owned unless
    `require_mark`. The operator adds the mark on its next write.
    """
    metadata = obj.get("metadata") or {}
    marked = (metadata.get("annotations") or {}).get(TENANT_UID_ANNOTATION)
    if uid is not None and marked == uid:
        # The mark is the stronger proof: labels edited by hand are put back by the drift repair.
        return True
    labels = metadata.get("labels") or {}
    if labels.get(naming.MANAGED_BY_LABEL) != naming.MANAGED_BY or labels.get(naming.TENANT_LABEL) != tenant:
        return False
    if uid is None:
        return True
    return marked is None and not require_mark


def redis_secret(tenant: str, settings: OperatorSettings) -> dict[str, Any] | None:
    """Build the Secret that gives the app `LIVERY_REDIS_URL`, or None when no tenant Redis is set."""
    if settings.tenant_redis_url is None:
        return None
    obj = secret(tenant, {REDIS_URL_KEY: settings.tenant_redis_url.get_secret_value()})
    obj["metadata"]["name"] = REDIS_SECRET_NAME
    return obj


def decode_secret(obj: dict[str, Any]) -> dict[str, str]:
    """Return a Secret's data as text."""
    return {key: base64.b64decode(value).decode() for key, value in (obj.get("data") or {}).items()}


def config_map(tenant: str, config: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(tenant, naming.APP_CONFIG_NAME, "app"),
        "data": {CONFIG_FILE_NAME: json.dumps(config, sort_keys=True, indent=2)},
    }


def deployment(spec: AppSpec, settings: OperatorSettings) -> dict[str, Any]:
    """Build the app Deployment: plan resources, probes, a hardened pod and the config and secret checksums."""
    tenant = spec.tenant
    selector = naming.labels(tenant, "app")
    environment = dict(spec.environment)
    environment["LIVERY_TENANT_CONFIG"] = f"{settings.config_mount_path}/{CONFIG_FILE_NAME}"
    env = [{"name": key, "value": value} for key, value in sorted(environment.items())]
    container = {
        "name": "app",
        "image": settings.app_image,
        "args": ["tenant-app", "--host", "0.0.0.0", "--port", str(settings.app_port)],
        "ports": [{"name": "http", "containerPort": settings.app_port, "protocol": "TCP"}],
        "env": env,
        "envFrom": _secret_sources(settings),
        "resources": {
            "requests": {"cpu": spec.cpu, "memory": spec.memory},
            "limits": {"cpu": spec.cpu, "memory": spec.memory},
        },
        "livenessProbe": _probe("/healthz", period=10),
        "readinessProbe": _probe("/readyz", period=5),
        "securityContext": {
            "runAsNonRoot": True,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [
            {"name": "config", "mountPath": settings.config_mount_path, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    pod_labels = {**selector, **spec.labels}
    pod_annotations = {CHECKSUM_ANNOTATION: spec.config_checksum}
    if spec.secret_checksum:
        pod_annotations[SECRET_CHECKSUM_ANNOTATION] = spec.secret_checksum
    if settings.tenant_redis_url is not None:
        redis_url = settings.tenant_redis_url.get_secret_value().encode()
        pod_annotations[REDIS_CHECKSUM_ANNOTATION] = hashlib.sha256(redis_url).hexdigest()
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(tenant, naming.APP_NAME, "app"),
        "spec": {
            "replicas": spec.replicas,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": pod_labels, "annotations": pod_annotations},
                "spec": {
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 10001,
                        "runAsGroup": 10001,
                        "fsGroup": 10001,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                    "volumes": [
                        {"name": "config", "configMap": {"name": naming.APP_CONFIG_NAME}},
                        {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
                    ],
                },
            },
        },
    }


def _secret_sources(settings: OperatorSettings) -> list[dict[str, Any]]:
    """Return the container's envFrom: on a key in both Secrets the last wins, so `tenant-app` comes last."""
    sources = []
    if settings.tenant_redis_url is not None:
        sources.append({"secretRef": {"name": REDIS_SECRET_NAME}})
    sources.append({"secretRef": {"name": naming.APP_SECRET_NAME}})
    return sources


def _probe(path: str, *, period: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": 3,
    }


def service(tenant: str, settings: OperatorSettings) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(tenant, naming.APP_NAME, "app"),
        "spec": {
            "type": "ClusterIP",
            "selector": naming.labels(tenant, "app"),
            "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def ingress(route: RouteSpec, settings: OperatorSettings) -> dict[str, Any]:
    """Build one Ingress for every host, with TLS through cert-manager when an issuer is set.

    The backend is the app Service, or the suspension Service while the tenant is suspended.
    """
    tenant = route.tenant
    annotations = {SUSPENDED_ANNOTATION: "true" if route.suspended else "false"}
    backend_name = SUSPENSION_SERVICE_NAME if route.suspended else naming.APP_NAME
    backend = {"service": {"name": backend_name, "port": {"number": SERVICE_PORT}}}
    rules = [
        {"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}}
        for host in route.hosts
    ]
    spec: dict[str, Any] = {"ingressClassName": settings.ingress_class, "rules": rules}
    if settings.cert_issuer:
        annotations[CERT_ISSUER_ANNOTATION] = settings.cert_issuer
        spec["tls"] = [{"hosts": list(route.hosts), "secretName": TLS_SECRET_NAME}]
    metadata = _metadata(tenant, naming.APP_NAME, "routing")
    metadata["annotations"] = annotations
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": metadata, "spec": spec}


def suspension_service(tenant: str, settings: OperatorSettings) -> dict[str, Any]:
    """Build the ExternalName Service that sends a suspended tenant's requests to the control API.

    An Ingress can name Services of its own namespace only, so this Service is a DNS alias of
    the control API's Service. The control API serves the branded suspension page for the
    Host header of each request. Ingress controllers connect to the `targetPort` of an
    ExternalName Service, and ingress-nginx requires it to be a number.
    """
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(tenant, SUSPENSION_SERVICE_NAME, "routing"),
        "spec": {
            "type": "ExternalName",
            "externalName": settings.suspension_service_host,
            "ports": [
                {
                    "name": "http",
                    "port": SERVICE_PORT,
                    "targetPort": settings.suspension_service_port,
                    "protocol": "TCP",
                }
            ],
        },
    }


def network_policy(tenant: str, settings: OperatorSettings) -> dict[str, Any]:
    """Deny all traffic except the listed peers.

    Inbound: the ingress controller, and metrics scrapers on the app port. Outbound: DNS,
    the tenant database, Redis and the control API.
    """
    egress: list[dict[str, Any]] = [
        {
            "to": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
            "ports": [{"protocol": "UDP", "port": DNS_PORT}, {"protocol": "TCP", "port": DNS_PORT}],
        }
    ]
    optional_rules = (
        _server_egress(settings.tenant_database_url, POSTGRES_DEFAULT_PORT),
        _server_egress(settings.tenant_redis_url, REDIS_DEFAULT_PORT),
        _control_api_egress(settings),
    )
    egress.extend(rule for rule in optional_rules if rule is not None)
    ingress: list[dict[str, Any]] = [
        {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": settings.ingress_namespace}}}]}
    ]
    if settings.metrics_namespaces:
        ingress.append(_metrics_ingress(settings))
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _metadata(tenant, NETWORK_POLICY_NAME),
        "spec": {
            "podSelector": {},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": ingress,
            "egress": egress,
        },
    }


def _metrics_ingress(settings: OperatorSettings) -> dict[str, Any]:
    """Admit Prometheus in `metrics_namespaces` to the app port, where the app serves /metrics."""
    sources = [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": name}}}
        for name in settings.metrics_namespaces
    ]
    return {"from": sources, "ports": [{"protocol": "TCP", "port": settings.app_port}]}


def _server_egress(url_setting: SecretStr | None, default_port: int) -> dict[str, Any] | None:
    """Admit egress to the server a URL names (the tenant database or Redis), or None when it is unset."""
    url = url_setting.get_secret_value() if url_setting else None
    if not url:
        return None
    parts = urlsplit(url)
    port = parts.port or default_port
    rule: dict[str, Any] = {"ports": [{"protocol": "TCP", "port": port}]}
    host = parts.hostname or ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        # NOTE: a server named by DNS name is admitted by port only, because a
        # NetworkPolicy can select addresses and pods but not names.
        return rule
    prefix = 32 if address.version == 4 else 128
    rule["to"] = [{"ipBlock": {"cidr": f"{address}/{prefix}"}}]
    return rule


def _control_api_egress(settings: OperatorSettings) -> dict[str, Any] | None:
    if not settings.control_api_url:
        return None
    parts = urlsplit(settings.control_api_url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return {
        "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": settings.control_api_namespace}}}],
        "ports": [{"protocol": "TCP", "port": port}],
    }


def resource_quota(spec: AppSpec) -> dict[str, Any]:
    """Cap the namespace at the plan's replicas (plus one surge pod) of the plan's size."""
    pods = max(spec.replicas, 1) + SURGE_PODS
    cpu = _multiply_quantity(spec.cpu, pods)
    memory = _multiply_quantity(spec.memory, pods)
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": _metadata(spec.tenant, QUOTA_NAME),
        "spec": {
            "hard": {
                "pods": str(pods),
                "requests.cpu": cpu,
                "limits.cpu": cpu,
                "requests.memory": memory,
                "limits.memory": memory,
                "services.loadbalancers": "0",
                "services.nodeports": "0",
            }
        },
    }


def limit_range(spec: AppSpec) -> dict[str, Any]:
    """Give containers without resources the plan's size and cap any container at it."""
    size = {"cpu": spec.cpu, "memory": spec.memory}
    return {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": _metadata(spec.tenant, LIMIT_RANGE_NAME),
        "spec": {"limits": [{"type": "Container", "default": size, "defaultRequest": size, "max": size}]},
    }


_QUANTITY = re.compile(r"^(?P<number>[0-9]+(?:\.[0-9]+)?)(?P<suffix>[a-zA-Z]*)$")


def _multiply_quantity(quantity: str, factor: int) -> str:
    """Multiply a Kubernetes quantity such as `500m` or `1.5Gi` by a whole number."""
    match = _QUANTITY.match(quantity)
    if match is None:
        raise ValueError(f"invalid Kubernetes quantity {quantity!r}")
    number = float(match["number"]) * factor
    text = str(int(number)) if number.is_integer() else f"{number:g}"
    return text + match["suffix"]


def app_objects(spec: AppSpec, settings: OperatorSettings) -> list[dict[str, Any]]:
    """Return the objects `ensure_app` applies, in apply order; the Deployment comes last."""
    objects = [
        resource_quota(spec),
        limit_range(spec),
        network_policy(spec.tenant, settings),
        service(spec.tenant, settings),
    ]
    redis = redis_secret(spec.tenant, settings)
    if redis is not None:
        # NOTE: unsetting LIVERY_TENANT_REDIS_URL leaves this Secret in each tenant namespace,
        # no longer referenced by the Deployment, until the tenant is deleted.
        objects.append(redis)
    objects.append(deployment(spec, settings))
    return objects
