"""Read Tenant and Plan manifests from YAML or JSON files and validate them.

`livery validate`, `livery apply` and the tests all go through `read_manifests`,
so a manifest gets the same verdict and the same messages wherever it is used.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .models.base import GROUP_VERSION
from .models.errors import format_validation_error
from .models.plan import Plan
from .models.tenant import Tenant

Resource = Tenant | Plan
KINDS: dict[str, type[Tenant] | type[Plan]] = {"Tenant": Tenant, "Plan": Plan}
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass
class Manifest:
    """One document of a manifest file, parsed and validated."""

    source: str
    index: int
    data: Any = None
    resource: Resource | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        """Name the document in messages: `file: document N (Kind name)`."""
        label = f"{self.source}: document {self.index + 1}"
        if isinstance(self.data, dict):
            kind = self.data.get("kind")
            metadata = self.data.get("metadata")
            name = metadata.get("name") if isinstance(metadata, dict) else None
            if isinstance(kind, str) and isinstance(name, str):
                label += f" ({kind} {name})"
        return label

    def messages(self) -> list[str]:
        return [f"{self.label}: {error}" for error in self.errors]


def validate_data(data: Any) -> tuple[Resource | None, list[str]]:
    """Validate one decoded document; return the model or the error lines."""
    if not isinstance(data, dict):
        return None, [f"(document): must be a mapping with apiVersion, kind, metadata and spec, got {type(data).__name__}"]
    kind = data.get("kind")
    if kind is None:
        return None, ["kind: is required; expected Tenant or Plan"]
    if kind not in KINDS:
        return None, [f"kind: unknown kind {kind!r}; Livery manifests are Tenant or Plan ({GROUP_VERSION})"]
    api_version = data.get("apiVersion")
    if api_version != GROUP_VERSION:
        return None, [f"apiVersion: must be {GROUP_VERSION!r} for kind {kind}, got {api_version!r}"]
    try:
        return KINDS[kind].model_validate(data), []
    except ValidationError as exc:
        return None, format_validation_error(exc)


def parse_text(text: str, source: str) -> list[Manifest]:
    """Split a YAML (or JSON) stream into validated documents; empty documents are skipped."""
    try:
        documents = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        return [Manifest(source=source, index=0, errors=[f"(file): not valid YAML{where}: {problem}"])]

    manifests = []
    for index, data in enumerate(documents):
        if data is None:
            continue
        resource, errors = validate_data(data)
        manifests.append(Manifest(source=source, index=index, data=data, resource=resource, errors=errors))
    return manifests


def manifest_files(path: Path) -> Iterator[Path]:
    """Yield `path` itself, or every manifest file under a directory in sorted order."""
    if path.is_dir():
        for child in sorted(path.rglob("*")):
            if child.is_file() and child.suffix in MANIFEST_SUFFIXES:
                yield child
    else:
        yield path


def read_manifests(paths: Iterable[Path]) -> list[Manifest]:
    """Read and validate every document in the given files and directories."""
    manifests: list[Manifest] = []
    for root in paths:
        if not root.exists():
            manifests.append(Manifest(source=str(root), index=0, errors=["(file): no such file or directory"]))
            continue
        for path in manifest_files(root):
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                manifests.append(Manifest(source=str(path), index=0, errors=[f"(file): cannot be read: {exc}"]))
                continue
            manifests.extend(parse_text(text, str(path)))
    return manifests
