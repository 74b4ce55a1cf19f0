"""Read Tenant and Plan manifests from YAML or JSON files and validate them.

`livery validate`, `livery apply` and the tests all go through `read_manifests`,
so a manifest gets the same verdict and the same messages wherever it is used.
"""

from __future__ import annotations

import os
import stat
import sys
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
STDIN = "-"


class ManifestLoader(yaml.SafeLoader):
    """A YAML loader that reads scalars as `kubectl` sends them to the API server.

    kubectl turns YAML into JSON with Go's YAML 1.1 rules, where `2024-01-01`
    stays a string and `1:30` is not a base-60 number. PyYAML's safe loader
    would make them a date and the integer 90.
    """


ManifestLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _number_or_text(constructor: Any) -> Any:
    def construct(loader: ManifestLoader, node: yaml.ScalarNode) -> Any:
        if ":" in node.value:
            return loader.construct_scalar(node)
        return constructor(loader, node)

    return construct


ManifestLoader.add_constructor("tag:yaml.org,2002:int", _number_or_text(yaml.SafeLoader.construct_yaml_int))
ManifestLoader.add_constructor("tag:yaml.org,2002:float", _number_or_text(yaml.SafeLoader.construct_yaml_float))


@dataclass
class Manifest:
    """One document of a manifest file, parsed and validated."""

    source: str
    index: int
    data: Any = field(default=None, repr=False)
    resource: Resource | None = field(default=None, repr=False)
    errors: list[str] = field(default_factory=list)
    item: int | None = None

    @property
    def label(self) -> str:
        """Name the document in messages: `file: document N (Kind name)`."""
        label = f"{self.source}: document {self.index + 1}"
        if self.item is not None:
            label += f" item {self.item + 1}"
        if isinstance(self.data, dict):
            kind = self.data.get("kind")
            metadata = self.data.get("metadata")
            name = metadata.get("name") if isinstance(metadata, dict) else None
            if isinstance(kind, str) and isinstance(name, str):
                label += f" ({_printable(kind)} {_printable(name)})"
        return label

    def messages(self) -> list[str]:
        return [f"{self.label}: {error}" for error in self.errors]


def _printable(text: str, limit: int = 60) -> str:
    """Return `text` safe for one terminal line: control characters escaped, shortened."""
    if not text.isprintable():
        text = text.encode("unicode_escape").decode("ascii")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def validate_data(data: Any) -> tuple[Resource | None, list[str]]:
    """Validate one decoded document; return the model or the error lines.

    `status` is ignored, as the API server ignores it on writes to a resource
    with a status subresource: only the reconciler sets it.
    """
    if not isinstance(data, dict):
        return None, [f"(document): must be a mapping with apiVersion, kind, metadata and spec, got {type(data).__name__}"]
    kind = data.get("kind")
    if kind is None:
        return None, ["kind: is required; expected Tenant or Plan"]
    if kind not in KINDS:
        return None, [f"kind: unknown kind {_printable(str(kind))!r}; Livery manifests are Tenant or Plan ({GROUP_VERSION})"]
    api_version = data.get("apiVersion")
    if api_version != GROUP_VERSION:
        return None, [f"apiVersion: must be {GROUP_VERSION!r} for kind {kind}, got {_printable(str(api_version))!r}"]
    document = {key: value for key, value in data.items() if key != "status"}
    try:
        return KINDS[kind].model_validate(document), []
    except ValidationError as exc:
        return None, format_validation_error(exc)
    except RecursionError:
        return None, ["(document): is nested too deeply"]


def _documents(data: Any, source: str, index: int) -> list[Manifest]:
    """Validate one document, or each item of a `kind: List` as `kubectl get -o yaml` writes it."""
    if isinstance(data, dict) and data.get("kind") == "List" and data.get("apiVersion") == "v1":
        items = data.get("items")
        if not isinstance(items, list):
            return [Manifest(source=source, index=index, data=data, errors=["items: must be a list of manifests"])]
        manifests = []
        for item_index, item in enumerate(items):
            resource, errors = validate_data(item)
            manifests.append(
                Manifest(source=source, index=index, data=item, resource=resource, errors=errors, item=item_index)
            )
        return manifests
    resource, errors = validate_data(data)
    return [Manifest(source=source, index=index, data=data, resource=resource, errors=errors)]


def parse_text(text: str, source: str) -> list[Manifest]:
    """Split a YAML (or JSON) stream into validated documents; empty documents are skipped.

    Documents before a YAML syntax error are still validated; the error is
    reported on the document where parsing stopped.
    """
    manifests: list[Manifest] = []
    parsed = 0
    try:
        for data in yaml.load_all(text, Loader=ManifestLoader):
            if data is not None:
                manifests.extend(_documents(data, source, parsed))
            parsed += 1
        return manifests
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        manifests.append(Manifest(source=source, index=parsed, errors=[f"(file): not valid YAML{where}: {problem}"]))
        return manifests
    except RecursionError:
        manifests.append(Manifest(source=source, index=parsed, errors=["(file): YAML is nested too deeply"]))
        return manifests


def manifest_files(path: Path, problems: list[Manifest]) -> Iterator[Path]:
    """Yield `path` itself, or every manifest file under a directory in sorted order.

    Folders that cannot be listed and entries that are not regular files are
    added to `problems` instead of being skipped silently.
    """
    if not path.is_dir():
        yield path
        return

    def record(error: OSError) -> None:
        problems.append(Manifest(source=str(error.filename), index=0, errors=[f"(file): cannot be read: {error.strerror}"]))

    for folder, subfolders, files in os.walk(path, onerror=record, followlinks=False):
        subfolders.sort()
        for name in sorted(files):
            child = Path(folder) / name
            if child.suffix not in MANIFEST_SUFFIXES:
                continue
            yield child


def _read(path: Path) -> tuple[str | None, str | None]:
    """Return the text of a manifest file, or None and the reason it cannot be read."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return None, "no such file or directory"
    except OSError as exc:
        return None, f"cannot be read: {exc.strerror}"
    if not stat.S_ISREG(mode):
        return None, "is not a regular file"
    try:
        return path.read_text(encoding="utf-8"), None
    except UnicodeDecodeError:
        return None, "is not UTF-8 text"
    except OSError as exc:
        return None, f"cannot be read: {exc.strerror}"


def read_manifests(paths: Iterable[Path]) -> list[Manifest]:
    """Read and validate every document in the given files and folders; `-` reads standard input."""
    manifests: list[Manifest] = []
    for root in paths:
        if str(root) == STDIN:
            manifests.extend(parse_text(sys.stdin.read(), "<stdin>"))
            continue
        if not root.exists() and not root.is_symlink():
            manifests.append(Manifest(source=str(root), index=0, errors=["(file): no such file or directory"]))
            continue
        problems: list[Manifest] = []
        for path in manifest_files(root, problems):
            text, problem = _read(path)
            if text is None:
                manifests.append(Manifest(source=str(path), index=0, errors=[f"(file): {problem}"]))
            else:
                manifests.extend(parse_text(text, str(path)))
        manifests.extend(problems)
    return manifests
