"""The tenant app's data layer: ORM models and the per-request tenant session.

Typical use: at startup, `app.state.tenant_database = TenantDatabase.from_settings(settings)`
(and `await app.state.tenant_database.dispose()` at shutdown); in endpoints,
take a `TenantSession` parameter and work in the transaction it opened.
"""

from .models import (
    PRODUCT_SEARCH_CONFIG,
    ApiKey,
    Base,
    Invitation,
    LoginLinkUse,
    PasswordResetToken,
    Product,
    StoredFile,
    User,
)
from .session import TenantContext, TenantDatabase, TenantSession, get_session

__all__ = [
    "PRODUCT_SEARCH_CONFIG",
    "ApiKey",
    "Base",
    "Invitation",
    "LoginLinkUse",
    "PasswordResetToken",
    "Product",
    "StoredFile",
    "TenantContext",
    "TenantDatabase",
    "TenantSession",
    "User",
    "get_session",
]
