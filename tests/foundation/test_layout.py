"""The dependency rules between the core and the programs hold in the source."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {
    "livery": REPO_ROOT / "livery",
    "livery_operator": REPO_ROOT / "operator" / "livery_operator",
    "livery_control_api": REPO_ROOT / "control_api" / "livery_control_api",
    "livery_tenant_app": REPO_ROOT / "tenant_app" / "livery_tenant_app",
    "livery_runtime": REPO_ROOT / "runtime" / "livery_runtime",
}
FORBIDDEN = {
    "livery": {"livery_operator", "livery_control_api", "livery_tenant_app", "livery_runtime"},
    "livery_operator": {"livery_control_api", "livery_tenant_app", "livery_runtime"},
    "livery_control_api": {"livery_operator", "livery_tenant_app", "livery_runtime"},
    "livery_tenant_app": {"livery_operator", "livery_control_api", "livery_runtime"},
}
# The tenant app may import the core's models and data helpers, but nothing that drives tenants.
TENANT_APP_ALLOWED_CORE = ("livery.models", "livery.tenant_schema", "livery.storage", "livery.settings", "livery.naming")


def imported_modules(package_dir: Path) -> list[tuple[Path, str]]:
    found = []
    for path in package_dir.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found.extend((path, alias.name) for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.append((path, node.module))
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_no_forbidden_program(package: str) -> None:
    violations = [
        f"{path.relative_to(REPO_ROOT)} imports {module}"
        for path, module in imported_modules(PACKAGES[package])
        if module.split(".")[0] in FORBIDDEN[package]
    ]

    assert violations == []


def test_tenant_app_uses_only_contract_parts_of_core() -> None:
    violations = [
        f"{path.relative_to(REPO_ROOT)} imports {module}"
        for path, module in imported_modules(PACKAGES["livery_tenant_app"])
        if module.split(".")[0] == "livery" and not module.startswith(TENANT_APP_ALLOWED_CORE)
    ]

    assert violations == []


def test_operator_folder_does_not_shadow_stdlib() -> None:
    import operator

    assert not (REPO_ROOT / "operator" / "__init__.py").exists()
    assert Path(operator.__file__).parent != REPO_ROOT / "operator"
