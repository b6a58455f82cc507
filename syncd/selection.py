"""Pure: which namespaces a `namespaces:` block selects (SPEC §1.4)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from syncd.config import Namespaces
from syncd.labels import selector_matches


@dataclass(frozen=True)
class NamespaceInfo:
    name: str
    terminating: bool = False
    labels: Mapping[str, str] = field(default_factory=dict, compare=False)


def _matches_any(name: str, globs: Iterable[str]) -> bool:
    return any(fnmatchcase(name, glob) for glob in globs)


def resolve(selection: Namespaces, namespaces: Iterable[NamespaceInfo], selector_matches: set[str]) -> list[str]:
    """names + patterns + selector (already evaluated by the apiserver), minus exclude, minus terminating."""
    chosen = []
    for namespace in namespaces:
        picked = (
            namespace.name in selection.names
            or _matches_any(namespace.name, selection.patterns)
            or namespace.name in selector_matches
        )
        if picked and not namespace.terminating and not _matches_any(namespace.name, selection.exclude):
            chosen.append(namespace.name)
    return sorted(chosen)


def selects(selection: Namespaces, namespace: NamespaceInfo) -> bool:
    """The same rule as `resolve`, for one namespace whose labels are known (watch events)."""
    picked = (
        namespace.name in selection.names
        or _matches_any(namespace.name, selection.patterns)
        or (selection.selector is not None and selector_matches(selection.selector, namespace.labels))
    )
    return picked and not namespace.terminating and not _matches_any(namespace.name, selection.exclude)
