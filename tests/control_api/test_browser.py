"""A real browser signs up, lands in the console and changes the brand colour."""

from __future__ import annotations

from pathlib import Path

import pytest

from livery_control_api.app import create_app

from .conftest import ThreadedServer, api_settings, unique_name

CHROMIUM = Path("/usr/bin/chromium")
BROWSER_ARGS = [
    "--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (apt-get install -y chromium)"),
]


@pytest.fixture(scope="module")
def console_server(control_database, local_store):
    """The control API on a real port, with its own local store in the server's event loop."""
    settings = api_settings(control_database, store="local")
    server = ThreadedServer(create_app(settings=settings)).start()
    yield server.url
    server.stop()


def test_signup_then_change_brand_colour(console_server):
    from playwright.sync_api import expect, sync_playwright

    tenant = unique_name("web")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        page = browser.new_page()
        page.goto(f"{console_server}/signup")

        page.get_by_label("Instance name").fill("admin")
        expect(page.locator("#tenant-check")).to_contain_text("reserved for the platform")
        page.get_by_label("Instance name").fill(tenant)
        expect(page.locator("#tenant-check")).to_contain_text("is available")
        page.get_by_label("Company name").fill("Browser Corp")
        page.get_by_label("Email").fill(f"{tenant}@example.com")
        page.get_by_label("Password").fill("correct horse battery")
        page.get_by_role("button", name="Create instance").click()

        page.wait_for_url(f"**/console/{tenant}")
        expect(page.get_by_role("heading", level=1)).to_have_text("Browser Corp")

        page.get_by_label("Primary colour", exact=True).fill("#ff5500")
        preview = page.locator("#preview")
        expect(preview).to_have_attribute("style", "--primary: #ff5500; --accent: #0ea5e9;")
        page.get_by_role("button", name="Save branding").click()

        page.wait_for_url(f"**/console/{tenant}?saved=branding*")
        expect(page.get_by_role("status")).to_have_text("Branding saved.")
        expect(page.get_by_label("Primary colour", exact=True)).to_have_value("#ff5500")
        browser.close()


def test_console_shows_status_when_ready(console_server, control_database):
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from playwright.sync_api import expect, sync_playwright

    from livery.models.tenant import TenantStatus
    from livery.store.local import LocalStore

    async def report_ready(tenant: str) -> None:
        store = await LocalStore.open(control_database)
        await store.update_tenant_status(tenant, TenantStatus(phase="Ready", url=f"http://{tenant}.livery.test"))
        await store.close()

    tenant = unique_name("web")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        page = browser.new_page()
        page.goto(f"{console_server}/signup")
        page.get_by_label("Instance name").fill(tenant)
        page.get_by_label("Company name").fill("Status Corp")
        page.get_by_label("Email").fill(f"{tenant}@example.com")
        page.get_by_label("Password").fill("correct horse battery")
        page.get_by_role("button", name="Create instance").click()
        page.wait_for_url(f"**/console/{tenant}")
        expect(page.get_by_role("button", name="Open my app")).to_be_disabled()

        # Playwright's sync API runs an event loop in this thread, so the store gets its own thread.
        with ThreadPoolExecutor(max_workers=1) as executor:
            executor.submit(asyncio.run, report_ready(tenant)).result(timeout=30)

        expect(page.get_by_test_id("phase")).to_have_text("Ready", timeout=15_000)
        expect(page.get_by_role("link", name=f"http://{tenant}.livery.test")).to_be_visible()
        expect(page.get_by_role("button", name="Open my app")).to_be_enabled()
        browser.close()
