"""Branding on every page: colours, logo, custom CSS sanitised, injected markup never rendered."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.asyncio(loop_scope="session")

HOSTILE_COLOUR = "#000000</style><img src=x onerror=alert(1)>"
HOSTILE_CSS = (
    "h1 { color: #123456 }\n"
    "</style><script>alert(1)</script>\n"
    ".a { background: url(javascript:alert(1)) }\n"
    ".b { width: expression(alert(1)) }\n"
    "@import url(https://evil.example/x.css);\n"
)
PAGES = ["/", "/store", "/login", "/products", "/files", "/team", "/api-keys", "/no-such-page"]


@pytest.fixture
def hostile_branding(tenant_pair):
    acme, _ = tenant_pair
    original = dict(acme.document)
    acme.write_config(
        branding={"primaryColor": HOSTILE_COLOUR, "accentColor": "#abcdef", "customCss": HOSTILE_CSS,
                  "logoUrl": "javascript:alert(1)", "productName": "Acme <b>Bold</b>"},
        features={"customCss": True},
    )
    acme.app.state.config_watcher.expire()
    yield acme
    acme.document.clear()
    acme.document.update(original)
    acme.write_config()
    acme.app.state.config_watcher.expire()


@pytest.mark.parametrize("path", PAGES)
async def test_hostile_branding_never_renders_markup(hostile_branding, path) -> None:
    acme = hostile_branding

    response = await acme.client.get(path)

    assert response.status_code in (200, 404)
    assert "onerror" not in response.text
    assert "<script" not in response.text
    assert "javascript:" not in response.text
    assert "Acme &lt;b&gt;Bold&lt;/b&gt;" in response.text
    assert 'src="/static/logo.png"' in response.text


async def test_theme_css_keeps_safe_parts_only(hostile_branding) -> None:
    acme = hostile_branding

    response = await acme.client.get("/theme.css")

    assert response.status_code == 200
    css = response.text
    assert "--accent: #abcdef" in css
    assert "--primary: #4f46e5" in css
    assert "color: #123456" in css
    for marker in ("</style", "<script", "javascript", "expression", "@import", "onerror"):
        assert marker not in css.lower()


async def test_powered_by_footer_follows_plan_feature(tenant_pair) -> None:
    _, globex = tenant_pair
    globex.write_config(features={"removePoweredBy": True})
    globex.app.state.config_watcher.expire()
    try:
        hidden = await globex.client.get("/store")
    finally:
        globex.write_config(features={})
        globex.app.state.config_watcher.expire()
    shown = await globex.client.get("/store")

    assert hidden.status_code == 200
    assert "Powered by" not in hidden.text
    assert "Powered by" in shown.text


async def test_pages_carry_strict_security_headers(tenant_pair) -> None:
    acme, _ = tenant_pair

    response = await acme.client.get("/store")

    assert response.status_code == 200
    policy = response.headers["content-security-policy"]
    assert "script-src 'none'" in policy
    assert "style-src 'self'" in policy
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_uploaded_raster_logo_is_served(tenant_pair) -> None:
    acme, _ = tenant_pair
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
    acme.app.state.files.storage.put_bytes(f"tenants/{acme.name}/branding/logo.png", png, "image/png")

    response = await acme.client.get("/branding/logo.png")

    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.content == png


async def test_uploaded_svg_logo_is_not_served(tenant_pair) -> None:
    acme, _ = tenant_pair
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><rect width="4" height="4"/></svg>'
    acme.app.state.files.storage.put_bytes(f"tenants/{acme.name}/branding/logo.svg", svg, "image/svg+xml")

    response = await acme.client.get("/branding/logo.svg")

    assert response.status_code == 404
    assert b"onload" not in response.content


async def test_uploaded_favicon_is_served_with_nosniff(tenant_pair) -> None:
    acme, _ = tenant_pair
    ico = b"\x00\x00\x01\x00\x01\x00" + b"\x00" * 32
    acme.app.state.files.storage.put_bytes(f"tenants/{acme.name}/branding/favicon.ico", ico, "image/x-icon")

    response = await acme.client.get("/branding/favicon.ico")

    assert response.status_code == 200
    assert response.headers["content-type"] == "image/x-icon"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.content == ico


async def test_branding_file_of_other_type_is_not_served(tenant_pair) -> None:
    acme, globex = tenant_pair
    acme.app.state.files.storage.put_bytes(f"tenants/{acme.name}/branding/page.html", b"<html>x</html>", "text/html")
    globex_png = b"\x89PNG\r\n\x1a\n" + b"\x01" * 32
    globex.app.state.files.storage.put_bytes(f"tenants/{globex.name}/branding/only-globex.png", globex_png, "image/png")

    html = await acme.client.get("/branding/page.html")
    foreign = await acme.client.get("/branding/only-globex.png")
    traversal = await acme.client.get(f"/branding/..%2F..%2F{globex.name}%2Fbranding%2Fonly-globex.png")

    assert html.status_code == 404
    assert foreign.status_code == 404
    assert traversal.status_code == 404


async def test_added_custom_domain_is_served_after_reload(tenant_pair) -> None:
    _, globex = tenant_pair
    domain = f"shop-{globex.name}.example.test"
    hosts = list(globex.document["hosts"])

    async with globex.anonymous_client(domain) as before_client:
        before = await before_client.get("/store")
    globex.write_config(hosts=hosts + [domain])
    globex.app.state.config_watcher.expire()
    try:
        async with globex.anonymous_client(domain) as after_client:
            after = await after_client.get("/store")
    finally:
        globex.write_config(hosts=hosts)
        globex.app.state.config_watcher.expire()

    assert before.status_code == 404
    assert after.status_code == 200
