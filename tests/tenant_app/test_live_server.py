"""The tenant app under a real uvicorn server: live branding reload and a headless Chromium session."""

from __future__ import annotations

import asyncio
import struct
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from livery_tenant_app.app import create_app

from .servers import serve

pytestmark = pytest.mark.asyncio(loop_scope="session")

RELOAD_DEADLINE_SECONDS = 60
BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--host-resolver-rules=MAP * 127.0.0.1",
]


@contextmanager
def live_app(tenant) -> Iterator[str]:
    """Serve a second app instance of `tenant` (same settings and storage) with uvicorn; yield its URL."""
    app = create_app(tenant.app.state.settings, storage=tenant.app.state.files.storage)
    with serve(app) as url:
        yield url.replace("127.0.0.1", tenant.host)


def solid_png(size: int, rgb: tuple[int, int, int]) -> bytes:
    raw = b"".join(b"\x00" + bytes(rgb) * size for _ in range(size))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


async def test_branding_change_reaches_running_app_without_errors(tenant_pair) -> None:
    _, globex = tenant_pair
    globex.write_config(branding={"primaryColor": "#102030"})
    statuses: list[int] = []
    with live_app(globex) as url:
        port = int(url.rsplit(":", 1)[1])
        transport = httpx.AsyncHTTPTransport()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", transport=transport,
                                     headers={"Host": globex.host}) as client:
            before = await client.get("/theme.css")
            globex.write_config(branding={"primaryColor": "#405060", "productName": "Globex Reloaded"})
            deadline = time.monotonic() + RELOAD_DEADLINE_SECONDS
            reloaded = False
            while time.monotonic() < deadline and not reloaded:
                page, css = await asyncio.gather(client.get("/store"), client.get("/theme.css"))
                statuses += [page.status_code, css.status_code]
                reloaded = "--primary: #405060" in css.text and "Globex Reloaded" in page.text
                await asyncio.sleep(0.05)
    globex.write_config(branding={})

    assert "--primary: #102030" in before.text
    assert reloaded, f"branding did not reach the app within {RELOAD_DEADLINE_SECONDS} s"
    assert set(statuses) == {200}


@pytest.mark.browser
async def test_browser_signs_in_adds_product_and_sees_colours(tenant_pair) -> None:
    playwright_api = pytest.importorskip("playwright.async_api")
    acme, _ = tenant_pair
    acme.write_config(branding={"primaryColor": "#aa3300", "accentColor": "#0055aa", "productName": "Acme Shop"})
    product_name = f"Browser anvil {int(time.time())}"
    try:
        with live_app(acme) as url:
            async with playwright_api.async_playwright() as playwright:
                browser = await playwright.chromium.launch(executable_path="/usr/bin/chromium", args=BROWSER_ARGS)
                try:
                    page = await browser.new_page()
                    response = await page.goto(f"{url}/auth/link?token={acme.login_token()}")
                    assert response is not None and response.status == 200
                    assert page.url.rstrip("/") == url

                    await page.goto(f"{url}/products")
                    await page.fill("input[name=name]", product_name)
                    await page.fill("input[name=price]", "19.99")
                    await page.set_input_files(
                        "input[name=image]",
                        files=[{"name": "anvil.png", "mimeType": "image/png", "buffer": solid_png(16, (200, 10, 10))}],
                    )
                    await page.click("#add-product button[type=submit]")
                    await page.wait_for_url(f"{url}/products")
                    row = page.locator("tr.product-row", has_text=product_name)
                    await row.wait_for()

                    topbar_colour = await page.eval_on_selector(".topbar", "e => getComputedStyle(e).backgroundColor")
                    heading_colour = await page.eval_on_selector("h1", "e => getComputedStyle(e).color")
                    link_colour = await page.eval_on_selector("main a, .pager a, td a", "e => getComputedStyle(e).color") \
                        if await page.locator("main a, .pager a, td a").count() else None
                    image_width = await row.locator("img").evaluate("e => e.complete ? e.naturalWidth : -1")
                    product_name_shown = await page.inner_text(".product-name")
                finally:
                    await browser.close()
    finally:
        acme.write_config(branding={})

    assert topbar_colour == "rgb(170, 51, 0)"
    assert heading_colour == "rgb(170, 51, 0)"
    assert link_colour in (None, "rgb(0, 85, 170)")
    assert product_name_shown == "Acme Shop"
    assert image_width == 16
