"""Paginated LIST calls parsed as plain JSON.

The generated models validate every field of every item; for thousands of Secrets or
ServiceAccounts that costs seconds and megabytes, and we read a handful of fields.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from syncd.kube.client import call, json_body

# Items per LIST request. Larger pages mean fewer requests (an idle sync of 1,000 namespaces is one
# request per kind, not seven); smaller ones bound the memory a page takes while it is parsed: at
# 2,000 that is about 12 MB for managed Secrets (1.2 KB of JSON each), 7 MB for namespaces.
PAGE_SIZE = 2000


def list_items(list_call: Callable[..., Any], *, what: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
    """Every item of a LIST, page by page, as dicts."""
    token: str | None = None
    while True:
        page_args = {**kwargs, "limit": PAGE_SIZE, "_preload_content": False}
        if token:
            page_args["_continue"] = token
        response = call(lambda args=page_args: list_call(**args), what=what)  # type: ignore[misc]
        body = json_body(response)
        yield from body.get("items") or []
        token = (body.get("metadata") or {}).get("continue")
        if not token:
            return
