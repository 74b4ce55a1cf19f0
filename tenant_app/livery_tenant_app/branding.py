"""The tenant's theme: branding from the tenant config with safe defaults.

Every value is checked again here, although the models already validate
it, because the config file may have been written by another version or by
hand. A value that fails its rule falls back to the default, so a bad stored
value can never break a page.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field

from livery.models.config import TenantConfig
from livery.models.rules import ASSET_URL, COLOUR

from .css import sanitise_css

logger = logging.getLogger(__name__)

DEFAULT_PRIMARY_COLOR = "#4f46e5"
DEFAULT_ACCENT_COLOR = "#0ea5e9"
DEFAULT_LOGO_URL = "/static/logo.png"
DEFAULT_FAVICON_URL = "/static/favicon.png"

_COLOUR = re.compile(COLOUR.pattern or "")
_ASSET_URL = re.compile(ASSET_URL.pattern or "")


@dataclass(frozen=True)
class Theme:
    """The tenant's brand as every page shows it."""

    product_name: str
    logo_url: str
    favicon_url: str
    primary_color: str
    accent_color: str
    custom_css: str
    show_powered_by: bool
    css_removed: list[str] = field(default_factory=list)

    @property
    def stylesheet(self) -> str:
        """Return the theme stylesheet: colour variables, then the sanitised custom CSS."""
        variables = f":root {{ --primary: {self.primary_color}; --accent: {self.accent_color}; }}\n"
        return variables + self.custom_css

    @property
    def version(self) -> str:
        """Return a short digest of the stylesheet, used to bust browser caches when it changes."""
        return hashlib.sha256(self.stylesheet.encode()).hexdigest()[:16]


def build_theme(config: TenantConfig) -> Theme:
    """Return the theme of `config`, with each invalid value replaced by its default."""
    branding = config.branding
    custom_css = ""
    removed: list[str] = []
    if branding.custom_css and config.features.custom_css:
        sanitised = sanitise_css(branding.custom_css)
        custom_css, removed = sanitised.css, sanitised.removed
        for message in removed:
            logger.warning("tenant %s: custom CSS %s", config.tenant, message)

    return Theme(
        product_name=branding.product_name or config.display_name,
        logo_url=_checked(branding.logo_url, _ASSET_URL, DEFAULT_LOGO_URL, "logoUrl", config.tenant),
        favicon_url=_checked(branding.favicon_url, _ASSET_URL, DEFAULT_FAVICON_URL, "faviconUrl", config.tenant),
        primary_color=_checked(branding.primary_color, _COLOUR, DEFAULT_PRIMARY_COLOR, "primaryColor", config.tenant),
        accent_color=_checked(branding.accent_color, _COLOUR, DEFAULT_ACCENT_COLOR, "accentColor", config.tenant),
        custom_css=custom_css,
        show_powered_by=not config.features.remove_powered_by,
        css_removed=removed,
    )


def _checked(value: str | None, pattern: re.Pattern[str], default: str, name: str, tenant: str) -> str:
    if value is None:
        return default
    if pattern.fullmatch(value) is None:
        logger.warning("tenant %s: branding.%s is invalid, using the default %s", tenant, name, default)
        return default
    return value
