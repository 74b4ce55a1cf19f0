"""Render charts/livery with Helm's own Go library, loaded through `helm-python-sdk`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_python as helm
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "charts" / "livery"
FULL_VALUES_FILE = Path(__file__).with_name("values-full.yaml")
RELEASE_NAME = "livery"
RELEASE_NAMESPACE = "livery-system"


@dataclass(frozen=True)
class Rendering:
    """The output of one `helm template`: every object, and the raw text per template."""

    values: dict[str, Any]
    texts: dict[str, str]
    objects: list[dict[str, Any]]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [obj for obj in self.objects if obj["kind"] == kind]

    def one(self, kind: str, name_suffix: str) -> dict[str, Any]:
        matches = [obj for obj in self.of_kind(kind) if obj["metadata"]["name"].endswith(name_suffix)]
        assert len(matches) == 1, f"expected one {kind} named *{name_suffix}, found {[m['metadata']['name'] for m in matches]}"
        return matches[0]


def render(chart: helm.Chart, values: dict[str, Any]) -> Rendering:
    """Render `chart` with `values` as `helm template` does, NOTES.txt left out of `objects`."""
    texts = chart.render(values, name=RELEASE_NAME, namespace=RELEASE_NAMESPACE, is_install=True)
    objects = []
    for path, text in sorted(texts.items()):
        if path.endswith("NOTES.txt"):
            continue
        objects.extend(document for document in yaml.safe_load_all(text) if document)
    return Rendering(values=values, texts=texts, objects=objects)
