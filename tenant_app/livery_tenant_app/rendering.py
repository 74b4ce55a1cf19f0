"""Jinja2 page rendering with the tenant's theme in every template."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from .config import LoadedConfig

TEMPLATES_DIR = Path(__file__).parent / "templates"
templates = Jinja2Templates(directory=str(TEMPLATES_DIR))


def loaded_config(request: Request) -> LoadedConfig:
    """Return the config the host middleware resolved for this request."""
    loaded = request.scope.get("state", {}).get("loaded_config")
    if loaded is None:
        loaded = request.app.state.config_watcher.current()
    return loaded


def render(request: Request, template: str, context: dict[str, Any] | None = None, status_code: int = 200,
           headers: dict[str, str] | None = None) -> HTMLResponse:
    """Render `template` with the theme, the signed-in user and the CSRF token in its context."""
    loaded = loaded_config(request)
    state = request.scope.get("state", {})
    values = {
        "request": request,
        "theme": loaded.theme,
        "config": loaded.config,
        "user": state.get("page_user"),
        "csrf_token": state.get("csrf_token", ""),
    }
    values.update(context or {})
    response = templates.TemplateResponse(request, template, values, status_code=status_code, headers=headers)
    response.headers.setdefault("cache-control", "no-store")
    return response


def render_error_page(request: Request, status_code: int, message: str, headers: dict[str, str] | None = None) -> HTMLResponse:
    return render(request, "error.html", {"status_code": status_code, "message": message}, status_code, headers)
