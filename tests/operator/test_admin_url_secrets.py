"""The tenant database admin URL: no secret in its query string, no admin parameter in tenant URLs."""

from __future__ import annotations

import pytest
from operator_support import unique_name
from sqlalchemy.engine import make_url

from livery.database import DatabaseProvisioner
from livery.database.errors import DatabaseError
from livery.settings import CommonSettings, SettingsError, load_settings

SECRET = "query-secret-value"


@pytest.mark.parametrize("parameter", ["password", "sslpassword"])
def test_provisioner_rejects_query_secret(parameter):
    with pytest.raises(DatabaseError) as caught:
        DatabaseProvisioner(f"postgresql://admin@127.0.0.1:5432/postgres?{parameter}={SECRET}")

    assert caught.value.reason == "InvalidDatabaseURL"
    assert parameter in str(caught.value)
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize("variable", ["LIVERY_TENANT_DATABASE_URL", "LIVERY_DATABASE_URL"])
def test_settings_reject_query_password(variable, monkeypatch):
    monkeypatch.setenv(variable, f"postgresql://admin@db.example.test/postgres?sslmode=require&password={SECRET}")

    with pytest.raises(SettingsError) as caught:
        load_settings(CommonSettings)

    assert variable in str(caught.value)
    assert "password" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_repr_drops_admin_parameters():
    provisioner = DatabaseProvisioner("postgresql://admin:pw@127.0.0.1:5432/postgres?application_name=x&options=-c%20a%3Db&sslmode=prefer")

    described = repr(provisioner)

    assert "options" not in described
    assert "application_name" not in described
    assert "sslmode=prefer" in described
    assert ":pw@" not in described


async def test_tenant_url_omits_admin_parameters(postgres_url):
    admin = make_url(postgres_url).update_query_dict({"application_name": "livery-admin", "options": "-cstatement_timeout=0"})
    provisioner = DatabaseProvisioner(admin.render_as_string(hide_password=False))
    name = unique_name("urlq")

    info = await provisioner.ensure_database(name, "schema", "tenant-password")

    app_url = make_url(info.app_url)
    assert "application_name" not in app_url.query
    assert "options" not in app_url.query
    assert app_url.username == info.role
    assert app_url.query.get("host") == make_url(postgres_url).query.get("host")
