"""Customer API: tokens, roles, branding, domains, team, API keys, login links and usage."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import update

from livery.models.tenant import MAX_DOMAINS
from livery_control_api.dependencies import utcnow
from livery_control_api.tables import PendingDomain

from .conftest import BASE_DOMAIN, unique_name

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def member_headers(api, tenant: str, owner: dict[str, str], role: str) -> dict[str, str]:
    email = f"{unique_name()}@example.com"
    invited = await api.http.post(f"/v1/tenants/{tenant}/members", json={"email": email, "role": role}, headers=owner)
    assert invited.status_code == 201, invited.text
    token = api.mailer.last_link(email).split("token=", 1)[1]
    accepted = await api.http.post("/v1/invitations/accept", json={"token": token, "password": "member password 1"})
    assert accepted.status_code == 200, accepted.text
    return {"Authorization": f"Bearer {await api.token(email, 'member password 1')}"}


async def test_token_grants_access_to_own_tenant(api):
    tenant, owner = await api.owner()

    response = await api.http.get(f"/v1/tenants/{tenant}", headers=owner)

    assert response.status_code == 200
    assert response.json()["name"] == tenant
    assert response.json()["role"] == "owner"


async def test_other_tenant_is_not_found(api):
    tenant, _ = await api.owner()
    _, stranger = await api.owner()

    response = await api.http.get(f"/v1/tenants/{tenant}", headers=stranger)

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


async def test_missing_token_is_unauthorized(api):
    tenant, _ = await api.owner()

    response = await api.http.get(f"/v1/tenants/{tenant}")

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


async def test_wrong_password_is_rejected(api, fresh_limiter):
    _, tenant, email = await api.signup()

    response = await api.http.post("/v1/auth/token", data={"username": email, "password": "not the password"})

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_grant"


async def test_refresh_token_issues_new_access_token(api):
    _, tenant, email = await api.signup()
    tokens = (await api.http.post("/v1/auth/token", data={"username": email, "password": "correct horse battery"})).json()

    response = await api.http.post(
        "/v1/auth/token", data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    )

    assert response.status_code == 200
    assert response.json()["token_type"] == "bearer"
    assert response.json()["access_token"]


async def test_logout_everywhere_revokes_refresh_tokens(api):
    _, tenant, email = await api.signup()
    tokens = (await api.http.post("/v1/auth/token", data={"username": email, "password": "correct horse battery"})).json()
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}

    await api.http.post("/v1/auth/logout-everywhere", headers=headers)
    response = await api.http.post(
        "/v1/auth/token", data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    )

    assert response.status_code == 401


async def test_login_is_rate_limited_per_account(api, fresh_limiter):
    _, tenant, email = await api.signup()
    for _ in range(api.context.settings.login_attempts_per_minute):
        await api.http.post("/v1/auth/token", data={"username": email, "password": "wrong password!"})

    response = await api.http.post("/v1/auth/token", data={"username": email, "password": "correct horse battery"})

    assert response.status_code == 429
    assert int(response.headers["retry-after"]) > 0


async def test_limiter_blocks_address_across_accounts(limiter):
    for index in range(3):
        await limiter.record_failure(f"account:user{index}@example.com", "address:10.0.0.1")

    assert await limiter.retry_after("account:new@example.com", "address:10.0.0.1") is not None
    assert await limiter.retry_after("account:new@example.com", "address:10.0.0.2") is None


async def test_limiter_clear_unblocks_account(limiter):
    for _ in range(3):
        await limiter.record_failure("account:a@example.com")

    await limiter.clear("account:a@example.com")

    assert await limiter.retry_after("account:a@example.com") is None


async def test_branding_patch_writes_spec(api):
    tenant, owner = await api.owner()

    response = await api.http.patch(
        f"/v1/tenants/{tenant}/branding", json={"primaryColor": "#112233", "productName": "Acme Desk"}, headers=owner
    )

    assert response.status_code == 200, response.text
    branding = (await api.context.store.get_tenant(tenant)).spec.branding
    assert branding.primary_color == "#112233"
    assert branding.product_name == "Acme Desk"


async def test_branding_rejects_markup_in_colour(api):
    tenant, owner = await api.owner()

    response = await api.http.patch(
        f"/v1/tenants/{tenant}/branding",
        json={"primaryColor": "#000000</style><img src=x onerror=alert(1)>"},
        headers=owner,
    )

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["field"] == "branding.primaryColor"
    assert "#rrggbb" in error["message"]
    assert (await api.context.store.get_tenant(tenant)).spec.branding is None


async def test_custom_css_needs_plan_feature(api):
    tenant, owner = await api.owner()

    response = await api.http.patch(f"/v1/tenants/{tenant}/branding", json={"customCss": "body{}"}, headers=owner)

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "feature_unavailable"


async def test_unknown_branding_field_is_invalid(api):
    tenant, owner = await api.owner()

    response = await api.http.patch(f"/v1/tenants/{tenant}/branding", json={"fontFamily": "Comic Sans"}, headers=owner)

    assert response.status_code == 422
    assert response.json()["error"]["field"] == "branding.fontFamily"


async def test_member_cannot_edit_branding(api):
    tenant, owner = await api.owner()
    member = await member_headers(api, tenant, owner, "member")

    response = await api.http.patch(f"/v1/tenants/{tenant}/branding", json={"primaryColor": "#000000"}, headers=member)

    assert response.status_code == 403
    assert response.json()["error"]["message"] == (
        f"role 'member' lacks the 'edit_branding' permission in tenant {tenant!r}"
    )


async def test_malformed_json_names_line_and_column(api):
    response = await api.http.post(
        "/v1/signup", content=b'{"tenant": "acme",\n  "email": }', headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 422
    assert response.json()["error"]["field"] == "body"
    assert response.json()["error"]["message"].startswith("body: invalid JSON at line 2, column 12")


async def test_admin_cannot_invite_owner(api):
    tenant, owner = await api.owner()
    admin = await member_headers(api, tenant, owner, "admin")

    response = await api.http.post(
        f"/v1/tenants/{tenant}/members", json={"email": "x@example.com", "role": "owner"}, headers=admin
    )

    assert response.status_code == 422


async def test_members_lists_roles(api):
    tenant, owner = await api.owner()
    await member_headers(api, tenant, owner, "admin")

    response = await api.http.get(f"/v1/tenants/{tenant}/members", headers=owner)

    assert response.status_code == 200
    assert sorted(member["role"] for member in response.json()) == ["admin", "owner"]


async def test_expired_invitation_is_rejected(api):
    from livery_control_api.tables import Invitation
    from livery_control_api.dependencies import utcnow
    from datetime import timedelta
    from sqlalchemy import update

    tenant, owner = await api.owner()
    email = f"{unique_name()}@example.com"
    await api.http.post(f"/v1/tenants/{tenant}/members", json={"email": email}, headers=owner)
    token = api.mailer.last_link(email).split("token=", 1)[1]
    async with api.context.sessions() as session, session.begin():
        await session.execute(update(Invitation).where(Invitation.email == email).values(expires_at=utcnow() - timedelta(seconds=1)))

    response = await api.http.post("/v1/invitations/accept", json={"token": token, "password": "member password 1"})

    assert response.status_code == 422
    assert response.json()["error"]["field"] == "token"


async def test_api_key_is_scoped_and_revocable(api):
    tenant, owner = await api.owner()
    other, _ = await api.owner()
    created = await api.http.post(f"/v1/tenants/{tenant}/api-keys", json={"name": "ci", "role": "member"}, headers=owner)
    assert created.status_code == 201
    key = {"Authorization": f"Bearer {created.json()['key']}"}

    own = await api.http.get(f"/v1/tenants/{tenant}", headers=key)
    foreign = await api.http.get(f"/v1/tenants/{other}", headers=key)
    await api.http.delete(f"/v1/tenants/{tenant}/api-keys/{created.json()['id']}", headers=owner)
    revoked = await api.http.get(f"/v1/tenants/{tenant}", headers=key)

    assert own.status_code == 200
    assert foreign.status_code == 404
    assert revoked.status_code == 401


async def test_api_key_secret_is_shown_once(api):
    tenant, owner = await api.owner()
    await api.http.post(f"/v1/tenants/{tenant}/api-keys", json={"name": "ci"}, headers=owner)

    response = await api.http.get(f"/v1/tenants/{tenant}/api-keys", headers=owner)

    assert response.status_code == 200
    assert [key["key"] for key in response.json()] == [None]


async def test_custom_domain_needs_plan_feature(api):
    tenant, owner = await api.owner()

    response = await api.http.post(f"/v1/tenants/{tenant}/domains", json={"domain": "shop.example.com"}, headers=owner)

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "feature_unavailable"


async def pro_tenant(api) -> tuple[str, dict[str, str]]:
    tenant, owner = await api.owner()
    changed = await api.admin("POST", f"/v1/admin/tenants/{tenant}/plan", json={"plan": "pro"})
    assert changed.status_code == 200, changed.text
    return tenant, owner


async def test_domain_is_added_after_txt_verification(api):
    tenant, owner = await pro_tenant(api)
    domain = f"{unique_name()}.example.com"
    requested = await api.http.post(f"/v1/tenants/{tenant}/domains", json={"domain": domain}, headers=owner)
    assert requested.status_code == 202
    record = requested.json()

    early = await api.http.post(f"/v1/tenants/{tenant}/domains/{domain}/verify", headers=owner)
    assert early.status_code == 409
    assert (await api.context.store.get_tenant(tenant)).spec.domains is None

    api.dns.records[record["txtName"]] = [record["txtValue"]]
    verified = await api.http.post(f"/v1/tenants/{tenant}/domains/{domain}/verify", headers=owner)

    assert record["txtName"] == f"_livery-challenge.{domain}"
    assert verified.status_code == 200
    assert (await api.context.store.get_tenant(tenant)).spec.domains == [domain]


async def test_domain_taken_by_other_tenant_conflicts(api):
    first, first_owner = await pro_tenant(api)
    second, second_owner = await pro_tenant(api)
    domain = f"{unique_name()}.example.com"
    record = (await api.http.post(f"/v1/tenants/{first}/domains", json={"domain": domain}, headers=first_owner)).json()

    pending = await api.http.post(f"/v1/tenants/{second}/domains", json={"domain": domain}, headers=second_owner)
    api.dns.records[record["txtName"]] = [record["txtValue"]]
    await api.http.post(f"/v1/tenants/{first}/domains/{domain}/verify", headers=first_owner)
    verified = await api.http.post(f"/v1/tenants/{second}/domains", json={"domain": domain}, headers=second_owner)

    # A pending claim blocks no one: the first tenant to verify gets the domain.
    assert pending.status_code == 202
    assert pending.json()["txtValue"] != record["txtValue"]
    assert verified.status_code == 409
    assert verified.json()["error"]["code"] == "domain_taken"


async def test_pending_domains_count_toward_limit(api):
    tenant, owner = await pro_tenant(api)
    for _ in range(MAX_DOMAINS):
        requested = await api.http.post(
            f"/v1/tenants/{tenant}/domains", json={"domain": f"{unique_name()}.example.com"}, headers=owner
        )
        assert requested.status_code == 202, requested.text

    response = await api.http.post(
        f"/v1/tenants/{tenant}/domains", json={"domain": f"{unique_name()}.example.com"}, headers=owner
    )

    assert response.status_code == 422
    assert "pending" in response.json()["error"]["message"]


async def test_expired_pending_domain_cannot_verify(api):
    tenant, owner = await pro_tenant(api)
    domain = f"{unique_name()}.example.com"
    record = (await api.http.post(f"/v1/tenants/{tenant}/domains", json={"domain": domain}, headers=owner)).json()
    async with api.context.sessions() as session, session.begin():
        await session.execute(
            update(PendingDomain).where(PendingDomain.domain == domain).values(created_at=utcnow() - timedelta(days=8))
        )
    api.dns.records[record["txtName"]] = [record["txtValue"]]

    response = await api.http.post(f"/v1/tenants/{tenant}/domains/{domain}/verify", headers=owner)

    assert response.status_code == 404
    assert (await api.context.store.get_tenant(tenant)).spec.domains is None


async def test_admin_domain_wins_over_pending_claim(api):
    tenant, owner = await pro_tenant(api)
    other, _ = await pro_tenant(api)
    domain = f"{unique_name()}.example.com"
    await api.http.post(f"/v1/tenants/{tenant}/domains", json={"domain": domain}, headers=owner)
    manifest = {"apiVersion": "livery.dev/v1alpha1", "kind": "Tenant", "metadata": {"name": other},
                "spec": {"displayName": "Other", "plan": "pro", "domains": [domain]}}

    response = await api.admin("POST", "/v1/admin/apply", json=manifest)

    assert response.status_code == 200, response.text
    listed = await api.http.get(f"/v1/tenants/{tenant}/domains", headers=owner)
    assert domain not in [item["domain"] for item in listed.json()]


async def test_domain_under_base_domain_is_invalid(api):
    tenant, owner = await pro_tenant(api)

    response = await api.http.post(
        f"/v1/tenants/{tenant}/domains", json={"domain": f"other.{BASE_DOMAIN}"}, headers=owner
    )

    assert response.status_code == 422
    assert BASE_DOMAIN in response.json()["error"]["message"]


async def test_login_link_waits_for_provisioning(api):
    tenant, owner = await api.owner()

    response = await api.http.post(f"/v1/tenants/{tenant}/login-link", headers=owner)

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "not_ready"


async def test_login_link_is_signed_with_tenant_key(api, local_store):
    import jwt

    from livery.models.tenant import TenantStatus

    tenant, owner = await api.owner()
    await local_store.write_tenant_secret(tenant, {"LIVERY_LOGIN_KEY": "login-key-0123456789abcdef-" + tenant})
    await local_store.update_tenant_status(tenant, TenantStatus(phase="Ready", url=f"http://{tenant}.{BASE_DOMAIN}"))

    response = await api.http.post(f"/v1/tenants/{tenant}/login-link", headers=owner)

    assert response.status_code == 200
    url = response.json()["url"]
    assert url.startswith(f"http://{tenant}.{BASE_DOMAIN}/auth/link?token=")
    claims = jwt.decode(url.split("token=")[1], "login-key-0123456789abcdef-" + tenant, algorithms=["HS256"], audience="livery-login")
    assert claims["sub"] == f"{tenant}@example.com"
    assert claims["tenant"] == tenant
    assert claims["exp"] - claims["iat"] == 300


async def test_usage_with_wrong_token_is_unauthorized(api, local_store):
    tenant, _ = await api.owner()
    await local_store.write_tenant_secret(tenant, {"LIVERY_USAGE_TOKEN": "right-token"})
    report = {"id": str(uuid.uuid4()), "metric": "users", "value": 1, "timestamp": "2026-01-01T00:00:00Z"}

    response = await api.http.post(
        "/v1/usage", json={"tenant": tenant, "reports": [report]}, headers={"Authorization": "Bearer wrong-token"}
    )

    assert response.status_code == 401


async def test_usage_report_id_counts_once(api, local_store):
    tenant, _ = await api.owner()
    await local_store.write_tenant_secret(tenant, {"LIVERY_USAGE_TOKEN": "token-" + tenant})
    report = {"id": str(uuid.uuid4()), "metric": "users", "value": 2, "timestamp": "2026-01-01T00:00:00Z"}
    headers = {"Authorization": f"Bearer token-{tenant}"}

    first = await api.http.post("/v1/usage", json={"tenant": tenant, "reports": [report]}, headers=headers)
    second = await api.http.post("/v1/usage", json={"tenant": tenant, "reports": [report]}, headers=headers)

    assert first.status_code == 200
    assert first.json() == {"accepted": 1, "duplicates": 0}
    assert second.json() == {"accepted": 0, "duplicates": 1}


async def test_unknown_path_has_error_shape(api):
    response = await api.http.get("/v1/nothing-here")

    assert response.status_code == 404
    assert set(response.json()["error"]) == {"code", "message", "field"}


async def test_health_and_readiness(api):
    health = await api.http.get("/healthz")
    ready = await api.http.get("/readyz")
    metrics = await api.http.get("/metrics")

    assert health.status_code == 200
    assert ready.status_code == 200
    assert metrics.status_code == 200
    assert "livery_signups_total" in metrics.text
    assert 'route="/v1/tenants/{name}"' in metrics.text
    assert 'route="/healthz"' in metrics.text


async def test_email_verification_token_works_once(api):
    _, tenant, email = await api.signup()
    token = api.mailer.last_link(email).split("token=", 1)[1]

    first = await api.http.post("/v1/auth/verify-email", data={"token": token})
    second = await api.http.post("/v1/auth/verify-email", data={"token": token})
    me = await api.http.get("/v1/me", headers={"Authorization": f"Bearer {await api.token(email)}"})

    assert first.status_code == 204
    assert second.status_code == 422
    assert me.json()["emailVerified"] is True


PNG_HEADER = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


async def test_logo_upload_stores_file(api, files_dir):
    tenant, owner = await api.owner()

    response = await api.http.post(
        f"/v1/tenants/{tenant}/branding/logo", files={"file": ("logo.png", PNG_HEADER, "image/png")}, headers=owner
    )

    assert response.status_code == 200, response.text
    assert response.json()["branding"]["logoUrl"] == "/branding/logo.png"
    from livery.storage import open_storage

    assert open_storage(None, None, files_dir).get_bytes(f"tenants/{tenant}/branding/logo.png") == PNG_HEADER


async def test_logo_with_wrong_content_is_rejected(api):
    tenant, owner = await api.owner()

    response = await api.http.post(
        f"/v1/tenants/{tenant}/branding/logo", files={"file": ("logo.png", b"<html>", "image/png")}, headers=owner
    )

    assert response.status_code == 422
    assert response.json()["error"]["field"] == "file"


async def test_svg_logo_is_rejected(api):
    tenant, owner = await api.owner()
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><image href="x" onerror="alert(1)"/></svg>'

    response = await api.http.post(
        f"/v1/tenants/{tenant}/branding/logo", files={"file": ("logo.svg", svg, "image/svg+xml")}, headers=owner
    )

    assert response.status_code == 422
    assert "SVG is not accepted" in response.json()["error"]["message"]


async def test_anonymous_logo_upload_is_rejected_before_parsing(api):
    tenant, _ = await api.owner()

    response = await api.http.post(
        f"/v1/tenants/{tenant}/branding/logo", content=b"not a multipart body",
        headers={"Content-Type": "multipart/form-data; boundary=x"},
    )

    assert response.status_code == 401


async def test_logo_upload_without_file_field_is_invalid(api):
    tenant, owner = await api.owner()

    response = await api.http.post(f"/v1/tenants/{tenant}/branding/logo", data={"other": "x"}, headers=owner)

    assert response.status_code == 422
    assert response.json()["error"]["field"] == "file"


class FakeRequest:
    def __init__(self, peer: str, forwarded: str, trusted: str) -> None:
        from types import SimpleNamespace

        from .conftest import api_settings

        settings = api_settings("postgresql://unused/none", trusted_proxies=trusted)
        self.client = SimpleNamespace(host=peer)
        self.headers = {"x-forwarded-for": forwarded}
        self.app = SimpleNamespace(state=SimpleNamespace(context=SimpleNamespace(settings=settings)))


@pytest.mark.parametrize(
    ("peer", "forwarded", "trusted", "expected"),
    [
        ("10.0.0.5", "203.0.113.7", "10.0.0.0/8", "203.0.113.7"),
        ("10.0.0.5", "198.51.100.1, 203.0.113.7", "10.0.0.0/8", "203.0.113.7"),
        ("203.0.113.9", "198.51.100.1", "10.0.0.0/8", "203.0.113.9"),
        ("10.0.0.5", "203.0.113.7", "", "10.0.0.5"),
    ],
)
async def test_client_address_trusts_only_proxies(peer, forwarded, trusted, expected):
    from livery_control_api.routers.accounts import client_address

    assert client_address(FakeRequest(peer, forwarded, trusted)) == expected


async def test_owner_deletes_own_tenant(api):
    tenant, owner = await api.owner()

    response = await api.http.delete(f"/v1/tenants/{tenant}", headers=owner)
    after = await api.http.get(f"/v1/tenants/{tenant}", headers=owner)

    assert response.status_code == 202
    assert after.status_code == 404


async def test_admin_member_cannot_delete_tenant(api):
    tenant, owner = await api.owner()
    admin = await member_headers(api, tenant, owner, "admin")

    response = await api.http.delete(f"/v1/tenants/{tenant}", headers=admin)

    assert response.status_code == 403


async def test_dangerous_custom_css_is_rejected(api):
    tenant, owner = await pro_tenant(api)
    css = "</style><script>alert(1)</script> a { background: url(javascript:alert(1)); width: expression(1) } @import url(https://evil.example/x.css);"

    response = await api.http.patch(f"/v1/tenants/{tenant}/branding", json={"customCss": css}, headers=owner)

    assert response.status_code == 422
    message = response.json()["error"]["message"]
    for construct in ("markup", "@import", "expression(...)", "javascript: URLs"):
        assert construct in message
    assert (await api.context.store.get_tenant(tenant)).spec.branding is None


@pytest.mark.parametrize(
    ("css", "construct"),
    [
        ("@\\69mport url(https://evil.example/x.css);", "@import"),
        ("@media screen { @\\69mport url(https://evil.example/x.css); }", "@import"),
        ("a { background: u\\72l(javascript:alert(1)) }", "javascript: URLs"),
        ("a { background: url('j\\61vascript:alert(1)') }", "javascript: URLs"),
        ("a { background: j\\61vascript:x }", "javascript: URLs"),
        ("p { width: expr\\65ssion(alert(1)) }", "expression(...)"),
        ("a { beh\\61vior: url(/x.htc) }", "behavior and -moz-binding"),
    ],
)
async def test_escaped_custom_css_is_rejected(api, css, construct):
    tenant, owner = await pro_tenant(api)

    response = await api.http.patch(f"/v1/tenants/{tenant}/branding", json={"customCss": css}, headers=owner)

    assert response.status_code == 422
    assert construct in response.json()["error"]["message"]


async def test_plain_custom_css_is_saved(api):
    tenant, owner = await pro_tenant(api)

    response = await api.http.patch(f"/v1/tenants/{tenant}/branding", json={"customCss": "h1 { color: #123456; }"}, headers=owner)

    assert response.status_code == 200
    assert (await api.context.store.get_tenant(tenant)).spec.branding.custom_css == "h1 { color: #123456; }"


async def test_owner_sees_no_infrastructure_details(api):
    from livery.models.tenant import Condition, TenantStatus

    tenant, owner = await api.owner()
    leak = "connection to db.internal:5432 as livery_admin failed"
    status = TenantStatus(phase="Provisioning", conditions=[
        Condition(type="DatabaseReady", status="False", reason="DatabaseUnreachable", message=leak),
        Condition(type="RoutingReady", status="False", reason="DomainNotAllowed", message="not serving x.saas.test"),
    ])
    await api.context.store.update_tenant_status(tenant, status)

    own = await api.http.get(f"/v1/tenants/{tenant}", headers=owner)
    admin = await api.admin("GET", f"/v1/admin/tenants/{tenant}")

    conditions = {item["type"]: item for item in own.json()["status"]["conditions"]}
    assert leak not in own.text
    assert conditions["DatabaseReady"]["reason"] == "DatabaseUnreachable"
    assert conditions["RoutingReady"]["message"] == "not serving x.saas.test"
    assert leak in admin.text
