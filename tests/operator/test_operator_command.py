"""`livery operator`: start-up errors name the setting and change nothing."""

from __future__ import annotations

from typer.testing import CliRunner

from livery_runtime.cli import app


def test_operator_rejects_invalid_setting(monkeypatch):
    monkeypatch.setenv("LIVERY_URL_PORT", "not-a-port")

    result = CliRunner().invoke(app, ["operator"])

    assert result.exit_code == 2
    assert "LIVERY_URL_PORT" in result.output


def test_operator_requires_tenant_database(monkeypatch, tmp_path):
    monkeypatch.delenv("LIVERY_TENANT_DATABASE_URL", raising=False)
    monkeypatch.delenv("LIVERY_DATABASE_URL", raising=False)

    result = CliRunner().invoke(app, ["operator", "--kubeconfig", str(tmp_path / "missing")])

    assert result.exit_code == 2
    assert "LIVERY_TENANT_DATABASE_URL" in result.output


def test_operator_reports_unreadable_kubeconfig(monkeypatch, tmp_path):
    monkeypatch.setenv("LIVERY_TENANT_DATABASE_URL", "postgresql://admin:pw-not-shown@127.0.0.1:1/postgres")

    result = CliRunner().invoke(app, ["operator", "--kubeconfig", str(tmp_path / "missing")])

    assert result.exit_code == 2
    assert "Kubernetes credentials" in result.output
    assert "pw-not-shown" not in result.output
