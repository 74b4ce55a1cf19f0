"""Defaults and validation the API server applies to the built-in kinds the operator writes.

Without them an operator can pass against the emulator and still fail on a
real cluster. For example, it compares the Deployment it built with the stored
one, which gained `strategy` and `revisionHistoryLimit`, or it reads a Secret's
`stringData`, which the API server folds into base64 `data`. Secrets,
ConfigMaps, Deployments, Services, Ingresses, NetworkPolicies, ResourceQuotas and
LimitRanges get the most common of the API server's rules. Other kinds are
stored as sent.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import re
from decimal import Decimal
from typing import Any

from k8s_emulator_objects import ResourceType
from k8s_emulator_schema import FieldError

_DATA_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_INGRESS_HOST = re.compile(r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")

# Cluster IPs handed to Services, from the default service CIDR of kubeadm (10.96.0.0/12).
_cluster_ips = (f"10.96.{index // 250}.{index % 250 + 1}" for index in itertools.count())


def admit_builtin(resource_type: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None) -> list[FieldError]:
    """Default `obj` in place and return its validation errors. `old` is the stored object on updates."""
    if resource_type.group == "" and resource_type.plural == "secrets":
        return _admit_secret(obj, old) + _data_key_errors(obj, "data")
    if resource_type.group == "" and resource_type.plural == "configmaps":
        return _data_key_errors(obj, "data") + _data_key_errors(obj, "binaryData")
    if resource_type.group == "apps" and resource_type.plural == "deployments":
        return _admit_deployment(obj, old)
    if resource_type.group == "" and resource_type.plural == "services":
        return _admit_service(obj, old)
    if resource_type.group == "networking.k8s.io" and resource_type.plural == "ingresses":
        return _ingress_errors(obj)
    if resource_type.group == "networking.k8s.io" and resource_type.plural == "networkpolicies":
        return _network_policy_errors(obj)
    if resource_type.group == "" and resource_type.plural == "resourcequotas":
        hard = (obj.get("spec") or {}).get("hard") or {}
        return [error for key, value in hard.items() if (error := quantity_error(f"spec.hard[{key}]", value))]
    if resource_type.group == "" and resource_type.plural == "limitranges":
        return _limit_range_errors(obj)
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
        errors += _resources_errors(f"spec.template.spec.containers[{index}].resources", container.get("resources") or {})
    return errors


def _resources_errors(field: str, resources: dict[str, Any]) -> list[FieldError]:
    """Check container requests and limits: valid quantities, and no request above its limit."""
    errors = []
    for kind in ("requests", "limits"):
        for name, value in (resources.get(kind) or {}).items():
            if error := quantity_error(f"{field}.{kind}[{name}]", value):
                errors.append(error)
    if errors:
        return errors
    limits = resources.get("limits") or {}
    for name, value in (resources.get("requests") or {}).items():
        if name in limits and parse_quantity(value) > parse_quantity(limits[name]):
            errors.append(FieldError(
                f"{field}.requests", "FieldValueInvalid",
                f"Invalid value: {json.dumps(value)}: must be less than or equal to {name} limit of {limits[name]}",
            ))
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

    errors = []
    ports = spec.get("ports") or []
    for index, port in enumerate(ports):
        number = port.get("port")
        if not isinstance(number, int) or not 1 <= number <= 65535:
            errors.append(FieldError(f"spec.ports[{index}].port", "FieldValueInvalid", f"Invalid value: {json.dumps(number)}: must be between 1 and 65535, inclusive"))
        if len(ports) > 1 and not port.get("name"):
            errors.append(FieldError(f"spec.ports[{index}].name", "FieldValueRequired", "Required value"))
    if old_ip and spec["clusterIP"] != old_ip:
        errors.append(FieldError("spec.clusterIP", "FieldValueInvalid", f"Invalid value: {json.dumps(spec['clusterIP'])}: field is immutable"))
    return errors


def _data_key_errors(obj: dict[str, Any], field: str) -> list[FieldError]:
    return [
        FieldError(field, "FieldValueInvalid", f"Invalid value: {json.dumps(key)}: a valid config key must consist of alphanumeric characters, '-', '_' or '.'")
        for key in obj.get(field) or {}
        if len(key) > 253 or not _DATA_KEY.match(key)
    ]


def _ingress_errors(obj: dict[str, Any]) -> list[FieldError]:
    errors = []
    for rule_index, rule in enumerate((obj.get("spec") or {}).get("rules") or []):
        host = rule.get("host")
        if host is not None and not _INGRESS_HOST.match(host):
            errors.append(FieldError(f"spec.rules[{rule_index}].host", "FieldValueInvalid", f"Invalid value: {json.dumps(host)}: must be a DNS name, optionally starting with '*.'"))
        for path_index, path in enumerate(((rule.get("http") or {}).get("paths")) or []):
            field = f"spec.rules[{rule_index}].http.paths[{path_index}]"
            path_type = path.get("pathType")
            if path_type is None:
                errors.append(FieldError(f"{field}.pathType", "FieldValueRequired", "Required value: pathType must be specified"))
            elif path_type not in ("Exact", "Prefix", "ImplementationSpecific"):
                errors.append(FieldError(f"{field}.pathType", "FieldValueNotSupported", f'Unsupported value: {json.dumps(path_type)}: supported values: "Exact", "ImplementationSpecific", "Prefix"'))
            elif path_type in ("Exact", "Prefix") and not str(path.get("path", "")).startswith("/"):
                errors.append(FieldError(f"{field}.path", "FieldValueInvalid", f"Invalid value: {json.dumps(path.get('path'))}: must be an absolute path"))
            service = ((path.get("backend") or {}).get("service")) or {}
            if not service.get("name"):
                errors.append(FieldError(f"{field}.backend.service.name", "FieldValueRequired", "Required value"))
            port = service.get("port") or {}
            if not port.get("number") and not port.get("name"):
                errors.append(FieldError(f"{field}.backend.service.port", "FieldValueRequired", "Required value: port name or number is required"))
    return errors


def _network_policy_errors(obj: dict[str, Any]) -> list[FieldError]:
    spec = obj.get("spec") or {}
    errors = []
    if "podSelector" not in spec:
        errors.append(FieldError("spec.podSelector", "FieldValueRequired", "Required value"))
    for index, policy_type in enumerate(spec.get("policyTypes") or []):
        if policy_type not in ("Ingress", "Egress"):
            errors.append(FieldError(f"spec.policyTypes[{index}]", "FieldValueNotSupported", f'Unsupported value: {json.dumps(policy_type)}: supported values: "Egress", "Ingress"'))
    for direction in ("ingress", "egress"):
        for rule_index, rule in enumerate(spec.get(direction) or []):
            for port_index, port in enumerate(rule.get("ports") or []):
                protocol = port.get("protocol", "TCP")
                if protocol not in ("TCP", "UDP", "SCTP"):
                    errors.append(FieldError(f"spec.{direction}[{rule_index}].ports[{port_index}].protocol", "FieldValueNotSupported", f'Unsupported value: {json.dumps(protocol)}: supported values: "SCTP", "TCP", "UDP"'))
    return errors


def _limit_range_errors(obj: dict[str, Any]) -> list[FieldError]:
    errors = []
    for index, limit in enumerate((obj.get("spec") or {}).get("limits") or []):
        if not limit.get("type"):
            errors.append(FieldError(f"spec.limits[{index}].type", "FieldValueRequired", "Required value"))
        for bound in ("default", "defaultRequest", "max", "min", "maxLimitRequestRatio"):
            for name, value in (limit.get(bound) or {}).items():
                if error := quantity_error(f"spec.limits[{index}].{bound}[{name}]", value):
                    errors.append(error)
    return errors


# Quantities: a decimal number with an SI (k, M, G), binary (Ki, Mi, Gi) or exponent (e3) suffix.
_QUANTITY = re.compile(r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?[0-9]+)?$")
_SUFFIX_FACTORS = {
    "": Decimal(1), "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"),
    "k": Decimal("1e3"), "M": Decimal("1e6"), "G": Decimal("1e9"), "T": Decimal("1e12"), "P": Decimal("1e15"), "E": Decimal("1e18"),
    "Ki": Decimal(2**10), "Mi": Decimal(2**20), "Gi": Decimal(2**30), "Ti": Decimal(2**40), "Pi": Decimal(2**50), "Ei": Decimal(2**60),
}


def parse_quantity(value: Any) -> Decimal:
    """Return the value of a Kubernetes quantity such as `500m`, `1.5Gi` or `2e3`; raise ValueError if invalid."""
    match = _QUANTITY.match(str(value)) if isinstance(value, (str, int, float)) else None
    if match is None:
        raise ValueError(f"invalid quantity {value!r}")
    number, suffix = Decimal(match.group(1)), match.group(2) or ""
    if suffix[:1] in ("e", "E"):
        return number * Decimal(10) ** int(suffix[1:])
    return number * _SUFFIX_FACTORS[suffix]


def quantity_error(field: str, value: Any) -> FieldError | None:
    try:
        parse_quantity(value)
    except ValueError:
        return FieldError(field, "FieldValueInvalid", f"Invalid value: {json.dumps(value)}: quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")
    return None
