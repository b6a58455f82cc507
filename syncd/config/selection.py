"""Pure: which namespaces a `namespaces:` block selects (SPEC §1.4)."""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase

from syncd.config import Namespaces
from syncd.core.kube_syntax import selector_matches
from syncd.core.values import NamespaceInfo

# Served only where a spec lists it in `names`: a pattern or selector that happens to match it is
# not enough (syncd's admission policy refuses writes there otherwise, see syncd/manifests/admission_policy.py).
PROTECTED_NAMESPACE = "kube-system"


def _matches_any(name: str, globs: Iterable[str]) -> bool:
    return any(fnmatchcase(name, glob) for glob in globs)


def selects(selection: Namespaces, namespace: NamespaceInfo) -> bool:
    """names + patterns + selector (kube-system: names only), minus exclude, minus terminating: the
    one rule for a listing (`resolve`), a watch event and the test fakes alike."""
    if namespace.name in selection.names:
        picked = True
    elif namespace.name == PROTECTED_NAMESPACE:
        picked = False
    else:
        picked = _matches_any(namespace.name, selection.patterns) or (
            selection.selector is not None and selector_matches(selection.selector, namespace.labels)
        )
    return picked and not namespace.terminating and not _matches_any(namespace.name, selection.exclude)


def resolve(selection: Namespaces, namespaces: Iterable[NamespaceInfo]) -> list[str]:
    """The names of the namespaces `selects` picks, sorted."""
    return sorted(namespace.name for namespace in namespaces if selects(selection, namespace))
