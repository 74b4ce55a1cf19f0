"""Defaults and validation the API server applies to the built-in kinds the operator writes.

Without them an operator can pass against the emulator and still fail on a
real cluster. For example, it compares the Deployment it built with the stored
one, which gained `strategy` and `revisionHistoryLimit`, or it reads a Secret's
`stringData`, which the API server folds into base64 `data`. Only Secrets,
Deployments and Services get these rules. Other built-in kinds are stored as sent.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
from typing import Any

from k8s_emulator_objects import ResourceType
from k8s_emulator_schema import FieldError

# Cluster IPs handed to Services, from the default service CIDR of kubeadm (10.96.0.0/12).
_cluster_ips = (f"10.96.{index // 250}.{index % 250 + 1}" for index in itertools.count())


def admit_builtin(resource_type: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None) -> list[FieldError]:
    """Default `obj` in place and return its validation errors. `old` is the stored object on updates."""
    if resource_type.group == "" and resource_type.plural == "secrets":
        return _admit_secret(obj, old)
    if resource_type.group == "apps" and resource_type.plural == "deployments":
        return _admit_deployment(obj, old)
    if resource_type.group == "" and resource_type.plural == "services":
        return _admit_service(obj, old)
    return []


def _admit_secret(obj: dict[str, Any], old: dict[str, Any] | None) -> list[FieldError]:
    errors = []
    data = obj.setdefault("data", {}) or {}
    for key, value in (obj.pop("stringData", None) or {}).items():
        data[key] = base64.b64encode(str(value).encode()).decode()
    for key, value in data.items():
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, TypeError, ValueError):
            errors.append(FieldError(f"data[{key}]", "FieldValueInvalid", "Invalid value: <hidden>: must be base64-encoded"))
    obj["data"] = data
    obj.setdefault("type", "Opaque")
    if old is not None and obj["type"] != old.get("type", "Opaque"):
        errors.append(FieldError("type", "FieldValueInvalid", f"Invalid value: {json.dumps(obj['type'])}: field is immutable"))
    return errors


def _admit_deployment(obj: dict[str, Any], old: dict[str, Any] | None) -> list[FieldError]:
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    spec.setdefault("strategy", {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})

    errors = []
    if not isinstance(spec["replicas"], int) or spec["replicas"] < 0:
        errors.append(FieldError("spec.replicas", "FieldValueInvalid", f"Invalid value: {json.dumps(spec['replicas'])}: must be greater than or equal to 0"))

    selector = (spec.get("selector") or {}).get("matchLabels")
    template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    if not selector:
        errors.append(FieldError("spec.selector", "FieldValueRequired", "Required value"))
    elif any(template_labels.get(key) != value for key, value in selector.items()):
        errors.append(FieldError(
            "spec.template.metadata.labels", "FieldValueInvalid",
            f"Invalid value: {json.dumps(template_labels)}: `selector` does not match template `labels`",
        ))
    if old is not None and spec.get("selector") != old.get("spec", {}).get("selector"):
        errors.append(FieldError("spec.selector", "FieldValueInvalid", f"Invalid value: {json.dumps(spec.get('selector'))}: field is immutable"))

    containers = (((spec.get("template") or {}).get("spec") or {}).get("containers")) or []
    if not containers:
        errors.append(FieldError("spec.template.spec.containers", "FieldValueRequired", "Required value"))
    for index, container in enumerate(containers):
        for field in ("name", "image"):
            if not container.get(field):
                errors.append(FieldError(f"spec.template.spec.containers[{index}].{field}", "FieldValueRequired", "Required value"))
    return errors


def _admit_service(obj: dict[str, Any], old: dict[str, Any] | None) -> list[FieldError]:
    spec = obj.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    for port in spec.get("ports") or []:
        port.setdefault("protocol", "TCP")
        port.setdefault("targetPort", port.get("port"))

    old_ip = (old or {}).get("spec", {}).get("clusterIP")
    if old_ip and not spec.get("clusterIP"):
        spec["clusterIP"] = old_ip  # an update without clusterIP keeps the allocated one
    if not spec.get("clusterIP"):
        spec["clusterIP"] = next(_cluster_ips)
    spec["clusterIPs"] = [spec["clusterIP"]]

    if old_ip and spec["clusterIP"] != old_ip:
        return [FieldError("spec.clusterIP", "FieldValueInvalid", f"Invalid value: {json.dumps(spec['clusterIP'])}: field is immutable")]
    return []
