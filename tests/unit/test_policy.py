"""syncd/manifests/admission_policy.py: the globs it hands CEL match what syncd's selection matches, and kube-system
is served only where a spec names it. The policy itself is tested on the real apiserver
(tests/integration/test_write_policy.py)."""

from __future__ import annotations

import re
from fnmatch import fnmatchcase

from hypothesis import given
from hypothesis import strategies as st

from syncd.config import Namespaces, SecretSpec
from syncd.config.selection import selects
from syncd.core.values import NamespaceInfo
from syncd.manifests.admission_policy import glob_regex, namespace_allowed

NAME_CHARS = "abk-19"


def spec_named(name: str, namespaces: Namespaces) -> SecretSpec:
    return SecretSpec(name=name, credentials=["c"], namespaces=namespaces)


GLOB_PARTS = st.one_of(
    st.sampled_from(list(NAME_CHARS)),
    st.just("*"),
    st.just("?"),
    st.builds(
        lambda body, negate: f"[{'!' if negate else ''}{body}]", st.text("ab1", min_size=1, max_size=3), st.booleans()
    ),
)


@given(st.lists(GLOB_PARTS, min_size=1, max_size=6).map("".join), st.text(NAME_CHARS, min_size=1, max_size=8))
def test_the_regex_of_a_glob_matches_what_fnmatch_matches(glob: str, name: str) -> None:
    assert bool(re.search(glob_regex(glob), name)) == fnmatchcase(name, glob), glob_regex(glob)


def test_a_range_in_brackets_stays_a_range() -> None:
    assert [n for n in ("a", "b", "d") if re.search(glob_regex("[a-c]"), n)] == ["a", "b"]
    assert [n for n in ("a", "b", "d") if re.search(glob_regex("[!a-c]"), n)] == ["d"]


def test_regex_specials_in_a_glob_are_literal() -> None:
    assert glob_regex("team.a+*") == r"^team\.a\+.*$"


def test_kube_system_is_selected_only_by_name() -> None:
    kube_system = NamespaceInfo("kube-system", labels={"pull": "yes"})
    assert not selects(Namespaces(patterns=["*"]), kube_system)
    assert not selects(Namespaces(selector="pull=yes"), kube_system)
    assert selects(Namespaces(names=["kube-system"]), kube_system)
    assert selects(Namespaces(patterns=["kube-*"]), NamespaceInfo("kube-public"))


def test_the_namespace_rule_keeps_kube_system_out_unless_named() -> None:
    assert namespace_allowed(spec_named("a", Namespaces(patterns=["*"]))) == 'request.namespace != "kube-system"'
    named = spec_named("a", Namespaces(names=["kube-system"], exclude=["tmp-*"]))
    assert namespace_allowed(named) == '!request.namespace.matches("^tmp-.*$")'
