"""Roles of accounts in a tenant and what each may do.

| permission       | owner | admin | member |
| ---------------- | ----- | ----- | ------ |
| view             | yes   | yes   | yes    |
| edit branding    | yes   | yes   | no     |
| manage domains   | yes   | yes   | no     |
| manage members   | yes   | yes   | no     |
| manage API keys  | yes   | yes   | no     |
| billing and plan | yes   | no    | no     |
| open the app     | yes   | no    | no     |
| delete tenant    | yes   | no    | no     |

An admin may invite admins and members but never an owner, and may not remove
or demote an owner. A tenant has exactly one owner, the account in `spec.owner`.
"""

from __future__ import annotations

from enum import Enum


class Role(str, Enum):
    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"


class Permission(str, Enum):
    VIEW = "view"
    EDIT_BRANDING = "edit_branding"
    MANAGE_DOMAINS = "manage_domains"
    MANAGE_MEMBERS = "manage_members"
    MANAGE_API_KEYS = "manage_api_keys"
    BILLING = "billing"
    OPEN_APP = "open_app"
    DELETE_TENANT = "delete_tenant"


_ADMIN_PERMISSIONS = {
    Permission.VIEW,
    Permission.EDIT_BRANDING,
    Permission.MANAGE_DOMAINS,
    Permission.MANAGE_MEMBERS,
    Permission.MANAGE_API_KEYS,
}

PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.OWNER: frozenset(Permission),
    Role.ADMIN: frozenset(_ADMIN_PERMISSIONS),
    Role.MEMBER: frozenset({Permission.VIEW}),
}


def allows(role: str, permission: Permission) -> bool:
    try:
        return permission in PERMISSIONS[Role(role)]
    except ValueError:
        return False


def may_grant(granter: str, role: str) -> bool:
    """Return whether an account with role `granter` may give another account `role`."""
    if role == Role.OWNER:
        return False
    return allows(granter, Permission.MANAGE_MEMBERS)
