"""Names, labels and derived values that every part of Livery computes the same way.

The operator, the embedded runtime, the control API and the tests all derive
namespaces, PostgreSQL identifiers, hosts and effective limits here, so the
parts agree on them without talking to each other.
"""

from __future__ import annotations

import hashlib

from psycopg import sql

from .models.plan import Limits, Plan
from .models.tenant import Tenant

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "livery"
TENANT_LABEL = "livery.dev/tenant"
NAMESPACE_PREFIX = "tenant-"
IDENTIFIER_PREFIX = "tenant_"
POSTGRES_MAX_IDENTIFIER_BYTES = 63
SHARED_DATABASE = "livery_shared"
SHARED_APP_ROLE = "livery_shared_app"
SCHEMA_DATABASE = "livery_tenants"
APP_SECRET_NAME = "tenant-app"
# The part of the app's credentials the control API needs (login key, usage token), kept apart
# so that the control API may read it without being able to read database passwords.
CONTROL_SECRET_NAME = "tenant-control"
APP_CONFIG_NAME = "tenant-config"
APP_NAME = "tenant-app"
# Namespace of the Events about Tenants. Tenants are cluster-scoped, and kopf and the operator
# post such events to "default", so the control API reads them there only.
TENANT_EVENT_NAMESPACE = "default"


def namespace_name(tenant: str) -> str:
    """Return the Kubernetes namespace of a tenant: `tenant-<name>`."""
    return f"{NAMESPACE_PREFIX}{tenant}"


def labels(tenant: str, component: str | None = None) -> dict[str, str]:
    """Return the labels that every object made for `tenant` carries."""
    result = {MANAGED_BY_LABEL: MANAGED_BY, TENANT_LABEL: tenant}
    if component is not None:
        result["app.kubernetes.io/component"] = component
    return result


def label_selector(tenant: str) -> str:
    """Return the label selector that finds every object made for `tenant`."""
    return f"{MANAGED_BY_LABEL}={MANAGED_BY},{TENANT_LABEL}={tenant}"


def postgres_identifier(tenant: str) -> str:
    """Return the database, role and schema name of a tenant: `tenant_<name, '-' as '_'>`.

    Tenant names are at most 40 ASCII characters, so the result fits PostgreSQL's
    63-byte limit. A longer name (possible only for callers that skip validation)
    is shortened with a hash suffix instead of being silently truncated by the server.
    """
    identifier = IDENTIFIER_PREFIX + tenant.replace("-", "_")
    if len(identifier.encode()) <= POSTGRES_MAX_IDENTIFIER_BYTES:
        return identifier
    digest = hashlib.sha256(tenant.encode()).hexdigest()[:8]
    return identifier.encode()[: POSTGRES_MAX_IDENTIFIER_BYTES - 9].decode(errors="ignore") + "_" + digest


def quoted_identifier(tenant: str) -> sql.Identifier:
    """Return the tenant's PostgreSQL identifier, ready to compose into SQL."""
    return sql.Identifier(postgres_identifier(tenant))


def primary_host(tenant: str, base_domain: str) -> str:
    """Return the host every tenant is served at: `<name>.<base domain>`."""
    return f"{tenant}.{base_domain}"


def tenant_hosts(tenant: Tenant, base_domain: str) -> list[str]:
    """Return the primary host followed by the tenant's custom domains, without duplicates."""
    hosts = [primary_host(tenant.name, base_domain)]
    for domain in tenant.spec.domains or []:
        if domain not in hosts:
            hosts.append(domain)
    return hosts


def effective_limits(plan: Plan, tenant: Tenant) -> Limits:
    """Return the plan's limits with the tenant's own overrides applied."""
    return plan.spec.limits.merged_with(tenant.spec.limits)


def effective_isolation(plan: Plan, tenant: Tenant) -> str:
    """Return the isolation mode the tenant asks for, or its plan's default."""
    return tenant.spec.isolation or plan.spec.isolation


def storage_prefix(tenant: str) -> str:
    """Return the file storage key prefix of a tenant: `tenants/<name>/`."""
    return f"tenants/{tenant}/"
