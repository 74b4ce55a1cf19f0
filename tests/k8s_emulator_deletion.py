"""Deletion in the emulator: finalizers, namespace termination and garbage collection."""

from __future__ import annotations

from typing import Any

from k8s_emulator_schema import copy_json
from k8s_emulator_objects import ApiError, ResourceType, now_rfc3339
from k8s_emulator_updates import tracks_generation


class DeletionMixin:
    """The deletion half of `LiveryKubernetesEmulator`, which owns the state used here."""

    def delete_object(
        self,
        resource_type: ResourceType,
        namespace: str | None,
        name: str,
        options: dict[str, Any],
        params: dict[str, str],
    ) -> dict[str, Any]:
        current = self._read_or_404(resource_type, namespace, name)
        preconditions = options.get("preconditions") or {}
        for field in ("uid", "resourceVersion"):
            expected = preconditions.get(field)
            if expected is not None and expected != current["metadata"][field]:
                raise ApiError(
                    409, "Conflict",
                    f'Operation cannot be fulfilled on {resource_type.group_resource} "{name}": '
                    f"Precondition failed: {field}: {expected}, actual: {current['metadata'][field]}",
                )
        # NOTE: propagationPolicy is ignored: dependents are always collected in the background.
        if params.get("dryRun") == "All" or "All" in (options.get("dryRun") or []):
            return current
        return self._delete(resource_type, current)

    def _delete(self, resource_type: ResourceType, current: dict[str, Any]) -> dict[str, Any]:
        metadata = current["metadata"]
        if metadata.get("deletionTimestamp"):
            return current

        if resource_type.plural == "namespaces":
            return self._terminate_namespace(resource_type, current)
        if not metadata.get("finalizers"):
            return self._remove(resource_type, current)

        marked = copy_json(current)
        marked["metadata"]["deletionTimestamp"] = now_rfc3339()
        marked["metadata"]["deletionGracePeriodSeconds"] = 0
        if tracks_generation(resource_type):
            marked["metadata"]["generation"] = metadata.get("generation", 1) + 1
        return self._store(resource_type, marked, old=current)

    def delete_collection(self, resource_type: ResourceType, namespace: str | None, params: dict[str, str]) -> dict[str, Any]:
        listing = self.list_objects(resource_type, namespace, params)
        if params.get("dryRun") != "All":
            for obj in listing["items"]:
                current = self.read_object(resource_type, obj["metadata"].get("namespace"), obj["metadata"]["name"])
                if current is not None:
                    self._delete(resource_type, current)
        return listing

    def _terminate_namespace(self, namespaces: ResourceType, current: dict[str, Any]) -> dict[str, Any]:
        """Mark a namespace Terminating and delete its content, as the namespace controller does."""
        name = current["metadata"]["name"]
        marked = copy_json(current)
        marked["metadata"]["deletionTimestamp"] = now_rfc3339()
        marked.setdefault("status", {})["phase"] = "Terminating"
        marked = self._store(namespaces, marked, old=current)

        for resource_type, namespace, obj in self._iter_objects():
            if namespace == name:
                still_there = self.read_object(resource_type, namespace, obj["metadata"]["name"])
                if still_there is not None:
                    self._delete(resource_type, still_there)
        self._finish_namespace_if_empty(name)
        return self.read_object(namespaces, None, name) or marked

    def _finish_namespace_if_empty(self, name: str) -> None:
        namespaces = self._types["", "v1", "namespaces"]
        namespace = self.read_object(namespaces, None, name)
        if namespace is None or not namespace["metadata"].get("deletionTimestamp"):
            return
        if namespace["metadata"].get("finalizers"):
            return
        if any(found_namespace == name for _, found_namespace, _ in self._iter_objects()):
            return
        self._remove(namespaces, namespace)

    def _delete_dependents(self, owner_uid: str) -> None:
        """Delete objects whose every owner is gone, as the garbage collector does in background mode."""
        live_uids = {obj["metadata"]["uid"] for _, _, obj in self._iter_objects()}
        for resource_type, namespace, obj in self._iter_objects():
            owners = obj["metadata"].get("ownerReferences") or []
            owner_uids = {owner.get("uid") for owner in owners}
            if owner_uid in owner_uids and not owner_uids & live_uids:
                still_there = self.read_object(resource_type, namespace, obj["metadata"]["name"])
                if still_there is not None:
                    self._delete(resource_type, still_there)
