"""Watch streams of the emulator: the event history, JSON-lines streams and bookmarks.

Every write appends a `WatchEvent` with its resourceVersion. A watch replays
the events after the resourceVersion it requests, then waits for new ones, so
clients that reconnect miss nothing while the history lasts.
"""

from __future__ import annotations

import asyncio
import bisect
from typing import Any

import aiohttp.web
from k8s_emulator_http import (
    ResourcePath,
    WatchEvent,
    event_type_for_selector,
    parse_resource_version,
    request_selector,
    write_event,
)
from k8s_emulator_objects import ApiError, ResourceType

# Watch events kept for clients that resume a watch from a resourceVersion. Older ones get 410 Gone.
WATCH_HISTORY_LIMIT = 20_000

# How often an idle watch checks whether its client has disconnected, in seconds.
WATCH_IDLE_CHECK_SECONDS = 1.0

# Idle time after which a watch that allows bookmarks gets one, in seconds. The API server
# sends them about once a minute, and kopf reconnects after 70 s without any event.
WATCH_BOOKMARK_SECONDS = 30.0


class WatchMixin:
    """The watch half of `LiveryKubernetesEmulator`, which owns the attributes used here."""

    def _record_event(
        self,
        resource_version: int,
        resource_type: ResourceType,
        namespace: str | None,
        event_type: str,
        obj: dict[str, Any],
        old: dict[str, Any] | None,
    ) -> None:
        """Append a watch event; `obj` must be a copy that nothing changes afterwards."""
        event = WatchEvent(resource_version, resource_type, namespace, event_type, obj, old)
        self._watch_events.append(event)
        if len(self._watch_events) > WATCH_HISTORY_LIMIT:
            del self._watch_events[: len(self._watch_events) - WATCH_HISTORY_LIMIT]
        self._watch_event_added.set()
        self._watch_event_added = asyncio.Event()

    async def _serve_watch(
        self, resource_type: ResourceType, path: ResourcePath, params: dict[str, str], raw_request: aiohttp.web.BaseRequest
    ) -> aiohttp.web.StreamResponse:
        """Stream watch events as JSON lines until `timeoutSeconds`, a client disconnect or shutdown."""
        namespace = path.namespace if resource_type.namespaced else None
        if path.name is not None:  # the deprecated watch of one object by URL
            name_selector = f"metadata.name={path.name}"
            params = {**params, "fieldSelector": ",".join(filter(None, [params.get("fieldSelector"), name_selector]))}
        matches = request_selector(params)
        timeout = float(params["timeoutSeconds"]) if params.get("timeoutSeconds") else None
        send_bookmarks = params.get("allowWatchBookmarks") == "true"
        initial_events = params.get("sendInitialEvents") == "true"
        since = params.get("resourceVersion") or "0"
        since_version = parse_resource_version(since)

        response = aiohttp.web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(raw_request)

        # Like the API server, reply to a resourceVersion older than the kept history with an
        # ERROR event carrying 410 Gone inside a 200 stream. Clients then list again.
        oldest = self._watch_events[0].resource_version if self._watch_events else self._last_resource_version + 1
        if since != "0" and not initial_events and since_version < oldest - 1 and since_version < self._last_resource_version:
            expired = ApiError(410, "Expired", f"too old resource version: {since_version} ({oldest - 1})")
            await write_event(response, "ERROR", expired.status())
            await response.write_eof()
            return response

        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout if timeout is not None else None
        try:
            # Without a resourceVersion, or with sendInitialEvents, the stream starts with the
            # current state as ADDED events.
            last_sent = since_version
            if since == "0" or initial_events:
                last_sent = self._last_resource_version
                for found_type, found_namespace, obj in self._iter_objects():
                    if found_type == resource_type and (namespace is None or found_namespace == namespace) and matches(obj):
                        await write_event(response, "ADDED", obj)
            if initial_events:  # a bookmark annotated as the end of the initial events
                await write_event(response, "BOOKMARK", self._bookmark(resource_type, last_sent, initial_events_end=True))
            last_activity = loop.time()

            while not self._closing:
                wakeup = self._watch_event_added
                index = bisect.bisect_right(self._watch_events, last_sent, key=lambda event: event.resource_version)
                for event in self._watch_events[index:]:
                    last_sent = event.resource_version
                    if event.resource_type != resource_type or (namespace is not None and event.namespace != namespace):
                        continue
                    event_type = event_type_for_selector(event, matches)
                    if event_type is not None:
                        await write_event(response, event_type, event.object)
                        last_activity = loop.time()

                if send_bookmarks and loop.time() - last_activity >= WATCH_BOOKMARK_SECONDS:
                    await write_event(response, "BOOKMARK", self._bookmark(resource_type, last_sent))
                    last_activity = loop.time()

                wait = WATCH_IDLE_CHECK_SECONDS
                if deadline is not None:
                    wait = min(wait, deadline - loop.time())
                    if wait <= 0:
                        break
                try:
                    await asyncio.wait_for(wakeup.wait(), timeout=wait)
                except TimeoutError:
                    transport = raw_request.transport
                    if transport is None or transport.is_closing():
                        break
            await response.write_eof()
        except ConnectionError:
            pass  # the client disconnected, and nothing needs cleaning up
        return response

    @staticmethod
    def _bookmark(resource_type: ResourceType, resource_version: int, *, initial_events_end: bool = False) -> dict[str, Any]:
        """Return the object of a BOOKMARK event: only the kind and the resourceVersion reached."""
        metadata: dict[str, Any] = {"resourceVersion": str(resource_version)}
        if initial_events_end:
            metadata["annotations"] = {"k8s.io/initial-events-end": "true"}
        return {"kind": resource_type.kind, "apiVersion": resource_type.api_version, "metadata": metadata}

    def compact_watch_history(self) -> None:
        """Forget past watch events, as etcd compaction does: older resourceVersions get 410 Gone."""
        self._watch_events.clear()

    async def close_watches(self) -> None:
        """End every open watch stream, so the server can stop without waiting for clients."""
        self._closing = True
        self._watch_event_added.set()
