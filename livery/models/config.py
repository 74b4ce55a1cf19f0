"""The tenant config: the JSON document behind `LIVERY_TENANT_CONFIG`.

The reconciler writes it (a ConfigMap on Kubernetes, a file in the embedded
runtime) and the tenant app reads it, re-reading it when it changes so that a
branding change reaches the running app without a restart.
"""

from __future__ import annotations

from pydantic import Field

from .base import SpecModel
from .plan import Features, Isolation, Limits
from .tenant import Branding, Owner

CONFIG_FILE_NAME = "tenant.json"


class TenantConfig(SpecModel):
    """Everything the tenant app needs to know about its tenant, secrets excepted."""

    tenant: str = Field(description="Tenant name.")
    display_name: str
    plan: str
    isolation: Isolation
    branding: Branding = Field(default_factory=Branding)
    features: Features = Field(default_factory=Features)
    limits: Limits = Field(description="Effective limits: the plan's merged with the tenant's overrides.")
    hosts: list[str] = Field(description="Every host the tenant is served at, the primary host first.")
    url: str = Field(description="Primary URL of the tenant app.")
    owner: Owner | None = None
    suspended: bool = False
    generation: int = Field(default=0, description="Tenant generation this config was made from.")
