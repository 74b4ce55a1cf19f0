"""Loading the tenant config, falling back on bad values and noticing changes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from livery_tenant_app.branding import DEFAULT_PRIMARY_COLOR
from livery_tenant_app.config import ConfigError, ConfigWatcher, parse_config

from .support import tenant_config_document


def write(path: Path, document: dict) -> None:
    path.write_text(json.dumps(document))


def test_injected_primary_color_falls_back_to_default() -> None:
    document = tenant_config_document("acme", branding={"primaryColor": "#000000</style><img src=x onerror=alert(1)>"})

    config = parse_config(json.dumps(document).encode())

    assert config.branding.primary_color is None
    assert config.tenant == "acme"


def test_bad_feature_switch_falls_back_to_default() -> None:
    document = tenant_config_document("acme", features={"customCss": "yes", "removePoweredBy": True})

    config = parse_config(json.dumps(document).encode())

    assert config.features.custom_css is False
    assert config.features.remove_powered_by is True


def test_missing_required_field_is_rejected() -> None:
    document = tenant_config_document("acme")
    del document["hosts"]

    with pytest.raises(ConfigError, match="hosts"):
        parse_config(json.dumps(document).encode())


def test_watcher_reloads_changed_file(tmp_path: Path) -> None:
    path = tmp_path / "tenant.json"
    write(path, tenant_config_document("acme", branding={"primaryColor": "#112233"}))
    clock = [0.0]
    watcher = ConfigWatcher(path, poll_seconds=2.0, clock=lambda: clock[0])
    assert watcher.current().theme.primary_color == "#112233"

    write(path, tenant_config_document("acme", branding={"primaryColor": "#445566", "productName": "Acme Two"}))
    os.utime(path, ns=(1, 10**18))
    clock[0] = 2.5

    theme = watcher.current().theme
    assert theme.primary_color == "#445566"
    assert theme.product_name == "Acme Two"


def test_watcher_checks_file_at_most_once_per_interval(tmp_path: Path) -> None:
    path = tmp_path / "tenant.json"
    write(path, tenant_config_document("acme", branding={"primaryColor": "#112233"}))
    clock = [0.0]
    watcher = ConfigWatcher(path, poll_seconds=2.0, clock=lambda: clock[0])
    watcher.current()

    write(path, tenant_config_document("acme", branding={"primaryColor": "#445566"}))
    clock[0] = 1.0

    assert watcher.current().theme.primary_color == "#112233"


def test_watcher_keeps_config_when_file_turns_invalid(tmp_path: Path) -> None:
    path = tmp_path / "tenant.json"
    write(path, tenant_config_document("acme", branding={"primaryColor": "#112233"}))
    clock = [0.0]
    watcher = ConfigWatcher(path, poll_seconds=1.0, clock=lambda: clock[0])

    path.write_text("{ not json")
    clock[0] = 5.0

    assert watcher.current().theme.primary_color == "#112233"


def test_watcher_keeps_config_when_file_disappears(tmp_path: Path) -> None:
    path = tmp_path / "tenant.json"
    write(path, tenant_config_document("acme"))
    clock = [0.0]
    watcher = ConfigWatcher(path, poll_seconds=1.0, clock=lambda: clock[0])

    path.unlink()
    clock[0] = 5.0

    assert watcher.current().config.tenant == "acme"
    assert watcher.current().theme.primary_color == DEFAULT_PRIMARY_COLOR


def test_custom_css_needs_the_plan_feature() -> None:
    document = tenant_config_document("acme", branding={"customCss": "h1 { color: red }"})

    watcher_theme = parse_and_theme(document)
    assert watcher_theme.custom_css == ""

    document["features"] = {"customCss": True}
    assert "color: red" in parse_and_theme(document).custom_css


def parse_and_theme(document: dict):
    from livery_tenant_app.branding import build_theme

    return build_theme(parse_config(json.dumps(document).encode()))
