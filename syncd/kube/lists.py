"""Paginated LIST calls parsed as plain JSON.

The generated models validate every field of every item; for thousands of Secrets or
ServiceAccounts that costs seconds and megabytes, and we read a handful of fields.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from syncd.kube.client import call, json_body

# Items per LIST request. A LIST that plans a sync (`syncd once`, or the daemon while a watch is
# down) takes pages of 15,000: an idle `syncd once` is then one request per kind in a cluster of
# 10,000 selected namespaces, with room to spare for the namespaces it does not select (the
# namespace LIST returns them all; the bench's cluster at 10,000 holds 10,204, and pages of
# 10,000 made that 5 requests). The cost is transient, while the largest page (managed Secrets,
# 1.2 KB of JSON each) is parsed: ~12 MB per 2,000 was measured (tracemalloc), so up to ~90 MB.
# The daemon's watch stores fill from pages of 1,000 (~6 MB each): its peak RSS is the figure
# that matters there, and it lists at start and once an hour (schedule.relist_interval).
PAGE_SIZE = 15_000
WATCH_PAGE_SIZE = 1000


def list_items(
    list_call: Callable[..., Any],
    *,
    what: str,
    page_size: int = PAGE_SIZE,
    on_version: Callable[[str], None] | None = None,
    **kwargs: Any,
) -> Iterator[dict[str, Any]]:
    """Every item of a LIST, page by page, as dicts. `on_version` hears the LIST's resourceVersion
    (its snapshot's, the same on every page), where a watch can start from."""
    token: str | None = None
    while True:
        page_args = {**kwargs, "limit": page_size, "_preload_content": False}
        if token:
            page_args["_continue"] = token
        response = call(lambda args=page_args: list_call(**args), what=what)  # type: ignore[misc]
        body = json_body(response)
        metadata = body.get("metadata") or {}
        if on_version is not None and not token:
            on_version(str(metadata.get("resourceVersion") or ""))
        yield from body.pop("items", None) or []
        token = metadata.get("continue")
        if not token:
            return
