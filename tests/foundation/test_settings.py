"""Settings are read from LIVERY_* variables and a bad value names its variable."""

from __future__ import annotations

import pytest

from livery.settings import CommonSettings, SettingsError, load_settings


def test_defaults_need_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("LIVERY_BASE_DOMAIN", "LIVERY_DATABASE_URL", "LIVERY_S3_BUCKET"):
        monkeypatch.delenv(variable, raising=False)

    settings = load_settings(CommonSettings)

    assert settings.base_domain == "localhost"
    assert settings.database_url is None


def test_invalid_base_domain_names_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVERY_BASE_DOMAIN", "Not A Domain")

    with pytest.raises(SettingsError) as raised:
        load_settings(CommonSettings)

    assert "LIVERY_BASE_DOMAIN" in str(raised.value)


def test_database_url_is_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVERY_DATABASE_URL", "postgresql://livery:hunter2@db.internal/livery")

    settings = load_settings(CommonSettings)

    assert "hunter2" not in repr(settings)
    assert settings.database_url.get_secret_value().endswith("@db.internal/livery")
