"""`livery validate` and the manifest reader: precise errors for bad manifests, none for good ones."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from livery.manifests import parse_text, read_manifests, validate_data
from livery_runtime.cli import app

REPO_ROOT = Path(__file__).resolve().parents[2]
BROKEN = Path(__file__).parent / "broken"

GOOD_TENANT: dict[str, Any] = {
    "apiVersion": "livery.dev/v1alpha1",
    "kind": "Tenant",
    "metadata": {"name": "acme"},
    "spec": {
        "displayName": "Acme",
        "plan": "free",
        "domains": ["shop.acme.example.com"],
        "branding": {"primaryColor": "#112233", "logoUrl": "https://cdn.acme.example.com/logo.png"},
    },
}


def with_change(path: str, value: Any) -> dict[str, Any]:
    """Return GOOD_TENANT with the dotted `path` set to `value` (or removed when value is ...)."""
    document = copy.deepcopy(GOOD_TENANT)
    *parents, last = path.split(".")
    node = document
    for part in parents:
        node = node.setdefault(part, {})
    if value is ...:
        node.pop(last, None)
    else:
        node[last] = value
    return document


BAD_TENANTS = [
    ("metadata.name", "1", "metadata.name: must be 3 to 40 characters"),
    ("metadata.name", "9lives", "metadata.name: must be 3 to 40 characters"),
    ("metadata.name", "a", "metadata.name: must be 3 to 40 characters"),
    ("metadata.name", "a" * 41, "metadata.name: must be 3 to 40 characters"),
    ("metadata.name", "xn--acme", "contain no '--', got 'xn--acme'"),
    ("metadata.name", "acme-", "metadata.name: must be 3 to 40 characters"),
    ("metadata.name", "Acme", "got 'Acme'"),
    ("metadata.name", "billing", "metadata.name: is reserved for the platform, got 'billing'"),
    ("metadata.name", "kube-acme", "metadata.name: must not start with 'kube-'"),
    ("metadata.name", "tenant-acme", "metadata.name: must not start with 'tenant-'"),
    ("spec.displayName", "", "spec.displayName: must be 1 to 100 characters, not blank, without control characters, got ''"),
    ("spec.displayName", "   ", "spec.displayName: must be 1 to 100 characters, not blank"),
    ("spec.displayName", "A\x00B", "got 'A\\x00B'"),
    ("spec.displayName", "Acme\x1b[31m", "spec.displayName: must be 1 to 100 characters, not blank, without control characters"),
    ("spec.displayName", "x" * 101, "spec.displayName: must be 1 to 100 characters"),
    ("spec.displayName", ..., "spec.displayName: is required"),
    ("spec.plan", ..., "spec.plan: is required"),
    ("spec.plan", "Pro", "spec.plan: must be a DNS label"),
    ("spec.isolation", "cluster", "spec.isolation: must be one of 'database', 'schema' or 'shared', got 'cluster'"),
    ("spec.branding.primaryColor", "blue", "spec.branding.primaryColor: must be a #rrggbb colour, got 'blue'"),
    ("spec.branding.accentColor", "#000000</style><img src=x onerror=alert(1)>", "spec.branding.accentColor: must be a #rrggbb colour"),
    ("spec.branding.customCss", "x" * 20481, "spec.branding.customCss: must be at most 20480 characters without NUL characters, got 20481 characters"),
    ("spec.branding.customCss", "\u00e9" * 10241, "spec.branding.customCss: must be at most 20480 bytes of UTF-8, got 20482 bytes"),
    ("spec.branding.customCss", "a{}\x00", "spec.branding.customCss: must be at most 20480 characters without NUL characters"),
    ("spec.branding.logoUrl", "javascript:alert(1)", "spec.branding.logoUrl: must be an https:// URL"),
    ("spec.branding.logoUrl", "http://cdn.example.com/logo.png", "spec.branding.logoUrl: must be an https:// URL"),
    ("spec.branding.faviconUrl", "https://x.example.com/a).png", "spec.branding.faviconUrl: must be an https:// URL"),
    ("spec.domains", ["*.acme.example.com"], "spec.domains[0]: must be a lowercase DNS name"),
    ("spec.domains", ["ok.example.com", "10.0.0.1"], "spec.domains[1]: must be a lowercase DNS name"),
    ("spec.domains", ["shop.example.com:8443"], "spec.domains[0]: must be a lowercase DNS name"),
    ("spec.domains", ["Shop.example.com"], "spec.domains[0]: must be a lowercase DNS name"),
    ("spec.domains", ["a" * 64 + ".example.com"], "spec.domains[0]: must be a lowercase DNS name"),
    ("spec.domains", [("a" * 63 + ".") * 4 + "com"], "spec.domains[0]: must be a lowercase DNS name"),
    ("spec.domains", ["a.example.com", "a.example.com"], "spec.domains[1]: must be unique, got 'a.example.com' twice"),
    ("spec.suspended", "yes", "spec.suspended: must be a boolean (true or false), got 'yes'"),
    ("spec.deletionPolicy", "Archive", "spec.deletionPolicy: must be one of 'Retain', 'Delete' or 'Snapshot'"),
    ("spec.limits", {"users": 0}, "spec.limits.users: must be at least 1, got 0"),
    ("spec.limits", {"users": "3"}, "spec.limits.users: must be an integer, got '3'"),
    ("spec.limits", {"cpu": "lots"}, "spec.limits.cpu: must be a CPU quantity"),
    ("spec.limits", {"memory": "1G"}, "spec.limits.memory: must be a memory quantity"),
    ("spec.owner", {"email": "nobody"}, "spec.owner.email: must be an email address"),
    ("spec.colour", "red", "spec.colour: is not a known field"),
    ("spec.branding.primaryColour", "#112233", "spec.branding.primaryColour: is not a known field"),
]


def test_good_tenant_is_valid() -> None:
    resource, errors = validate_data(GOOD_TENANT)

    assert errors == []
    assert resource is not None


@pytest.mark.parametrize(("path", "value", "expected"), BAD_TENANTS, ids=[f"{row[0]}={str(row[1])[:20]}" for row in BAD_TENANTS])
def test_bad_tenant_error_names_field(path: str, value: Any, expected: str) -> None:
    resource, errors = validate_data(with_change(path, value))

    assert resource is None
    assert len(errors) == 1, errors
    assert expected in errors[0]


def test_integral_float_is_an_integer() -> None:
    resource, errors = validate_data(with_change("spec.limits", {"users": 5.0}))

    assert errors == []
    assert resource.spec.limits.users == 5


def test_status_in_manifest_is_ignored() -> None:
    document = {**GOOD_TENANT, "status": {"phase": "Exploded", "conditions": "nonsense"}}

    resource, errors = validate_data(document)

    assert errors == []
    assert resource.status is None


def test_yaml_scalars_read_as_kubectl_sends_them() -> None:
    text = (
        "apiVersion: livery.dev/v1alpha1\nkind: Tenant\nmetadata: {name: acme}\n"
        "spec: {displayName: 2024-01-01, plan: free, limits: {users: 1:30}}\n"
    )

    [manifest] = parse_text(text, "kubectl.yaml")

    assert manifest.data["spec"]["displayName"] == "2024-01-01"
    assert manifest.errors == ["spec.limits.users: must be an integer, got '1:30'"]


def test_list_kind_items_are_validated() -> None:
    bad = with_change("spec.branding.primaryColor", "red")
    text = json.dumps({"apiVersion": "v1", "kind": "List", "items": [GOOD_TENANT, bad]})

    manifests = parse_text(text, "list.json")

    assert [manifest.label for manifest in manifests] == [
        "list.json: document 1 item 1 (Tenant acme)",
        "list.json: document 1 item 2 (Tenant acme)",
    ]
    assert manifests[0].errors == []
    assert manifests[1].errors == ["spec.branding.primaryColor: must be a #rrggbb colour, got 'red'"]


def test_label_escapes_control_characters() -> None:
    document = copy.deepcopy(GOOD_TENANT)
    document["metadata"]["name"] = "bad\nname\x1b[31m"

    [manifest] = parse_text(json.dumps(document), "escape.json")

    assert "\n" not in manifest.label
    assert "\x1b" not in manifest.label
    assert manifest.label == "escape.json: document 1 (Tenant bad\\nname\\x1b[31m)"


def test_yaml_error_names_failing_document() -> None:
    good = yaml.safe_dump(GOOD_TENANT)
    text = good + "---\n" + good + "---\nkind: [bad\n"

    manifests = parse_text(text, "three.yaml")

    assert [manifest.errors for manifest in manifests[:2]] == [[], []]
    assert manifests[2].label == "three.yaml: document 3"
    assert manifests[2].errors[0].startswith("(file): not valid YAML at line")


def test_alias_bomb_is_rejected_quickly() -> None:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 10):
        lines.append(f"a{level}: &a{level} [{', '.join(['*a' if level == 1 else f'*a{level - 1}'] * 9)}]")
    text = "\n".join(lines) + "\napiVersion: livery.dev/v1alpha1\nkind: Tenant\nmetadata: {name: acme}\n"
    text += "spec: {displayName: *a9, plan: free}\n"

    [manifest] = parse_text(text, "bomb.yaml")

    assert manifest.errors[0].startswith("spec.displayName: must be a string, got [[[")
    assert "a9: is not a known field" in manifest.errors
    assert max(len(error) for error in manifest.errors) < 200


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    text = "x: " + "[" * 5000 + "]" * 5000 + "\n"

    [manifest] = parse_text(text, "deep.yaml")

    assert "nested too deeply" in manifest.errors[0]


def test_not_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"kind: Tenant\nspec: {displayName: caf\xe9}\n")

    [manifest] = read_manifests([path])

    assert manifest.errors == ["(file): is not UTF-8 text"]


def test_fifo_is_reported_not_read(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.yaml")

    [manifest] = read_manifests([tmp_path])

    assert manifest.errors == ["(file): is not a regular file"]


def test_dangling_symlink_is_reported(tmp_path: Path) -> None:
    (tmp_path / "gone.yaml").symlink_to(tmp_path / "missing.yaml")

    [manifest] = read_manifests([tmp_path])

    assert manifest.errors == ["(file): no such file or directory"]


def test_document_that_is_not_a_mapping() -> None:
    _, errors = validate_data(["a", "list"])

    assert errors == ["(document): must be a mapping with apiVersion, kind, metadata and spec, got list"]


def test_wrong_api_version() -> None:
    _, errors = validate_data({**GOOD_TENANT, "apiVersion": "livery.dev/v1"})

    assert errors == ["apiVersion: must be 'livery.dev/v1alpha1' for kind Tenant, got 'livery.dev/v1'"]


def test_invalid_yaml_names_line() -> None:
    manifests = parse_text("kind: Tenant\nmetadata: {name: acme\n", "bad.yaml")

    assert len(manifests) == 1
    assert manifests[0].errors[0].startswith("(file): not valid YAML at line")


def test_empty_documents_are_skipped() -> None:
    manifests = parse_text("---\n---\n", "empty.yaml")

    assert manifests == []


def test_examples_validate() -> None:
    manifests = read_manifests([REPO_ROOT / "examples"])

    assert [message for manifest in manifests for message in manifest.messages()] == []
    kinds = sorted(manifest.resource.kind for manifest in manifests if manifest.resource is not None)
    assert kinds.count("Plan") == 3
    assert kinds.count("Tenant") >= 3


def test_example_tenants_cover_every_isolation_mode() -> None:
    manifests = read_manifests([REPO_ROOT / "examples" / "tenants"])
    tenants = [manifest.resource for manifest in manifests]

    plans = {manifest.resource.name: manifest.resource for manifest in read_manifests([REPO_ROOT / "examples" / "plans"])}

    assert {tenant.spec.isolation for tenant in tenants} == {"database", "schema", "shared"}
    for tenant in tenants:
        # Custom domains are served only on plans with the feature, so examples use them exactly there.
        assert bool(tenant.spec.domains) == plans[tenant.spec.plan].spec.features.custom_domains, tenant.name
        branding = tenant.spec.branding
        assert branding.product_name and branding.logo_url and branding.favicon_url, tenant.name
        assert branding.primary_color and branding.accent_color, tenant.name


def test_shipped_plans_match_examples() -> None:
    shipped = sorted((REPO_ROOT / "livery" / "plans").glob("*.yaml"))
    examples = sorted((REPO_ROOT / "examples" / "plans").glob("*.yaml"))

    assert [path.name for path in shipped] == [path.name for path in examples]
    for ours, theirs in zip(shipped, examples):
        assert ours.read_text() == theirs.read_text(), ours.name


def test_validate_command_accepts_examples() -> None:
    result = CliRunner().invoke(app, ["validate", "-f", str(REPO_ROOT / "examples")])

    assert result.exit_code == 0, result.output
    assert "6 documents, 6 valid, 0 invalid with 0 errors" in result.output


def test_validate_command_reports_each_problem_once() -> None:
    result = CliRunner().invoke(app, ["validate", "-f", str(BROKEN)])
    error_lines = [line for line in result.output.splitlines() if not line.endswith(": valid") and "documents," not in line]

    assert result.exit_code == 1
    expected = [
        ("colour.yaml: document 1 (Tenant acme): spec.branding.primaryColor: must be a #rrggbb colour, got 'blue'"),
        ("no-kind.yaml: document 1: kind: is required"),
        ("not-yaml.yaml: document 1: (file): not valid YAML at line"),
        ("plan-limits.yaml: document 1 (Plan tiny): spec.isolation: must be one of"),
        ("plan-limits.yaml: document 1 (Plan tiny): spec.limits.users: must be at least 1, got 0"),
        ("plan-limits.yaml: document 1 (Plan tiny): spec.limits.apiRequestsPerMinute: is required"),
        ("reserved-name.yaml: document 1 (Tenant admin): metadata.name: is reserved for the platform"),
        ("two-documents.yaml: document 2 (Tenant initech): spec.domains[0]: must be a lowercase DNS name"),
        ("two-documents.yaml: document 2 (Tenant initech): spec.color: is not a known field"),
        ("unknown-kind.yaml: document 1 (Tennant acme): kind: unknown kind 'Tennant'"),
    ]
    assert len(error_lines) == len(expected), result.output
    for fragment in expected:
        assert sum(fragment in line for line in error_lines) == 1, fragment
    assert "two-documents.yaml: document 1 (Tenant globex): valid" in result.output


def test_validate_command_reads_standard_input() -> None:
    result = CliRunner().invoke(app, ["validate", "-f", "-"], input=yaml.safe_dump(GOOD_TENANT))

    assert result.exit_code == 0, result.output
    assert "<stdin>: document 1 (Tenant acme): valid" in result.output


def test_validate_command_missing_path() -> None:
    result = CliRunner().invoke(app, ["validate", "-f", "does/not/exist.yaml"])

    assert result.exit_code == 1
    assert "does/not/exist.yaml: document 1: (file): no such file or directory" in result.output


def test_validate_command_empty_folder(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["validate", "-f", str(tmp_path)])

    assert result.exit_code == 1
    assert "no manifests found" in result.output
