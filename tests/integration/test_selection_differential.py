"""syncd's label-selector matcher against the apiserver's own `labelSelector=` answer.

`syncd run` decides which namespaces a selector picks with syncd's matcher alone
(syncd.core.kube_syntax.selector_matches, through syncd.config.selection.selects) over its watch
store; `syncd once` and every other client ask the apiserver. Hypothesis writes selectors with
every operator the apiserver parses (`=`, `==`, `!=`, `in`, `notin`, `key`, `!key`, `>`, `<`;
set-based with several values, prefixed keys, empty values, integers at and past int64), plus
malformed ones, over one pool of labelled namespaces made once per module:
- a selector the apiserver refuses, syncd's config refuses too;
- a selector syncd's config accepts, the apiserver accepts, and both pick the same namespaces.
Then the daemon's side: namespaces relabelled while the watch-cached adapter runs, and the
namespaces it selects from its store become the apiserver's answer.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from functools import partial

import pytest
from hypothesis import Phase, event, given, settings
from hypothesis import strategies as st
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from harness.kube_objects import labels_of, name_of
from harness.wait import wait_until
from syncd.config import Namespaces
from syncd.config.selection import selects
from syncd.core.values import NamespaceInfo
from syncd.kube.cached_cluster import CachedCluster
from syncd.kube.stores import WatchCache
from syncd.kube.watches import watch_loops
from tests.integration.cluster_worlds import syncd_api_of

pytestmark = pytest.mark.integration

POOL_SIZE = 40
EXAMPLES = 500
KEYS = ["app", "tier", "in", "notin", "example.com/team", "x.y-z/v_1", "n", "kubernetes.io/metadata.name"]
VALUES = ["a", "b", "web", "", "A.b-c_d", "in"]
NUMBERS = ["0", "1", "01", "7", "10", "9223372036854775807", "9223372036854775808", "99999999999999999999"]
# Operands of `>` / `<`: label values and beyond (a sign, a fraction, a word, nothing).
OPERANDS = [*NUMBERS, "-1", "+1", "1.5", "x", ""]
BAD_KEYS = ["_a", "A/b", "a/b/c", "x.io/", "/a", "a-", "k" * 64, "a b"]
BAD_VALUES = ["-b", "b_", "v" * 64, "a=b", "(b)"]
# What syncd refuses although the apiserver parses it: an empty set, which the apiserver reads as
# the empty value (`in ()` is `in ("")`): surely a mistake in a config.
STRICTER = "needs at least one value"


def _pool_labels(rng: random.Random) -> dict[str, str]:
    labels: dict[str, str] = {}
    for key in KEYS[:-1]:  # the apiserver sets kubernetes.io/metadata.name itself
        if rng.random() < 0.5:
            labels[key] = rng.choice([*VALUES, *NUMBERS])
    return labels


@pytest.fixture(scope="module")
def admin(kube_api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(kube_api)


@pytest.fixture(scope="module")
def pool(admin: client.CoreV1Api) -> list[NamespaceInfo]:
    """POOL_SIZE namespaces labelled from a fixed seed (some with no labels), as the apiserver holds them."""
    prefix, rng = f"d{uuid.uuid4().hex[:6]}", random.Random(23)
    for index in range(POOL_SIZE):
        labels = _pool_labels(rng) if index % 8 else {}
        admin.create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name=f"{prefix}-{index}", labels=labels))
        )
    found = admin.list_namespace().items
    return [NamespaceInfo(name_of(n), labels=labels_of(n)) for n in found if name_of(n).startswith(prefix)]


def _weighted(good: list[str], bad: list[str]) -> st.SearchStrategy[str]:
    """Mostly well-formed, sometimes not: most selectors should reach the comparison of answers."""
    return st.sampled_from(good * 6 + bad)


KEY = _weighted([*KEYS, "missing"], BAD_KEYS)
VALUE = _weighted([*VALUES, *NUMBERS], BAD_VALUES)
SPACE = st.sampled_from(["", " "])


def _term() -> st.SearchStrategy[str]:
    exists = KEY
    absent = st.builds(lambda space, key: f"!{space}{key}", SPACE, KEY)
    equality = st.builds(
        lambda key, s1, op, s2, value: f"{key}{s1}{op}{s2}{value}",
        KEY,
        SPACE,
        st.sampled_from(["=", "==", "!="]),
        SPACE,
        VALUE,
    )
    in_set = st.builds(
        lambda key, op, space, values: f"{key} {op}{space}({','.join(values)})",
        KEY,
        st.sampled_from(["in", "notin"]),
        SPACE,
        st.lists(VALUE, min_size=0, max_size=3),
    )
    compare = st.builds(
        lambda key, space, op, operand: f"{key}{space}{op}{space}{operand}",
        KEY,
        SPACE,
        st.sampled_from([">", "<"]),
        st.sampled_from(OPERANDS),
    )
    return st.one_of(exists, absent, equality, in_set, compare)


WELL_FORMED = st.lists(_term(), min_size=1, max_size=3).map(",".join)


@st.composite
def _selectors(draw: st.DrawFn) -> str:
    """A selector, sometimes with one character inserted or removed (a typo's worth of damage)."""
    selector = draw(WELL_FORMED)
    damage = draw(st.sampled_from(["none", "none", "none", "insert", "remove"]))
    at = draw(st.integers(0, len(selector)))
    if damage == "insert":
        return selector[:at] + draw(st.sampled_from(list(",()!=<> -_./"))) + selector[at:]
    if damage == "remove" and selector:
        return selector[:at] + selector[at + 1 :]
    return selector


def _apiserver(admin: client.CoreV1Api, selector: str, pool: list[NamespaceInfo]) -> list[str] | None:
    """The pool namespaces the apiserver's labelSelector picks; None when it refuses the selector (400)."""
    try:
        found = admin.list_namespace(label_selector=selector).items
    except ApiException as exc:
        if exc.status != 400:
            raise
        return None
    names = {n.name for n in pool}
    return sorted(name_of(n) for n in found if name_of(n) in names)


def _syncd(selector: str, pool: list[NamespaceInfo]) -> list[str] | str:
    """The pool namespaces syncd's config selects with it; the validation error when it refuses it."""
    try:
        selection = Namespaces(selector=selector)
    except ValidationError as exc:
        return str(exc)
    return sorted(n.name for n in pool if selects(selection, n))


@settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None)
@given(selector=_selectors())
def test_syncd_selects_what_the_apiserver_selects(
    admin: client.CoreV1Api, pool: list[NamespaceInfo], selector: str
) -> None:
    answer, ours = _apiserver(admin, selector, pool), _syncd(selector, pool)
    event("refused by both" if answer is None else "refused by syncd only" if isinstance(ours, str) else "compared")
    if answer is None:
        assert isinstance(ours, str), f"the apiserver refuses {selector!r}, syncd's config accepts it"
    elif isinstance(ours, str):
        assert STRICTER in ours, f"syncd refuses {selector!r}, which the apiserver accepts: {ours}"
    else:
        assert ours == answer, selector


def test_the_pool_gives_every_operator_something_to_tell_apart(
    admin: client.CoreV1Api, pool: list[NamespaceInfo]
) -> None:
    """Hypothesis compares answers; this shows the pool makes them differ: each operator picks
    some of the pool and leaves some out, in agreement with the apiserver."""
    for selector in ("app", "!app", "app=a", "app==a", "app!=a", "app in (a,b)", "app notin (a,b)", "n>7", "n<10"):
        answer = _apiserver(admin, selector, pool)
        assert answer is not None
        assert 0 < len(answer) < len(pool), selector
        assert _syncd(selector, pool) == answer, selector


# The daemon's selection, from its watch store, while namespaces are relabelled

RELABELLED = 12
WATCHED_SELECTORS = [
    "app",
    "!app",
    "app=a",
    "app==web",
    "app!=a",
    "app in (a,web,)",
    "app notin (a,b)",
    "example.com/team in (a,b),tier",
    "tier=,n",
    "n>7",
    "n<10,!tier",
    "in in (in),notin!=a",
]


@pytest.fixture(scope="module")
def daemon_view(kube_api: client.ApiClient, request: pytest.FixtureRequest) -> Iterator[CachedCluster]:
    """What `syncd run` plans from: the namespace watch filling its store, CachedCluster reading it."""
    api = syncd_api_of(request)
    cache = WatchCache()
    loops = watch_loops(
        api,
        secret_names=[],
        service_account_names=[],
        on_event=lambda _event: None,
        on_relist=lambda _kind: None,
        cache=cache,
    )
    for loop in loops.values():
        loop.start()
    yield CachedCluster(api, cache, first_list_wait=30)
    for loop in loops.values():
        loop.stop(wait=5)


@pytest.fixture(scope="module")
def relabelled(admin: client.CoreV1Api) -> list[str]:
    prefix = f"r{uuid.uuid4().hex[:6]}"
    names = [f"{prefix}-{index}" for index in range(RELABELLED)]
    for name in names:
        admin.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    return names


def _selected_from_store(daemon: CachedCluster, selector: str, names: list[str]) -> list[str] | None:
    """The daemon's answer within `names`; None while its store is not live (it would LIST instead)."""
    if daemon.cache.values("namespaces") is None:
        return None
    return [n for n in daemon.select_namespaces(Namespaces(selector=selector)) if n in names]


def _selected_by_apiserver(admin: client.CoreV1Api, selector: str, names: list[str]) -> list[str]:
    return sorted(name_of(n) for n in admin.list_namespace(label_selector=selector).items if name_of(n) in names)


LABELS = st.dictionaries(
    st.sampled_from(["app", "tier", "example.com/team", "n", "in", "notin"]),
    st.sampled_from(["a", "b", "web", "", "in", "3", "8", "12"]),
    max_size=4,
)


# No shrinking: a failing example waits out its timeout on every selector, and its changes say enough.
@settings(max_examples=8, derandomize=True, database=None, deadline=None, phases=[Phase.explicit, Phase.generate])
@given(changes=st.lists(st.tuples(st.integers(0, RELABELLED - 1), LABELS), min_size=1, max_size=6))
def test_the_daemon_selects_what_the_apiserver_selects_after_relabelling(
    admin: client.CoreV1Api,
    daemon_view: CachedCluster,
    relabelled: list[str],
    changes: list[tuple[int, dict[str, str]]],
) -> None:
    for index, labels in changes:
        current = labels_of(admin.read_namespace(relabelled[index]))
        gone: dict[str, str | None] = {
            key: None for key in current if key not in labels and "/metadata.name" not in key
        }
        admin.patch_namespace(relabelled[index], {"metadata": {"labels": {**gone, **labels}}})
    for selector in WATCHED_SELECTORS:
        wait_until(
            partial(_agree, admin, daemon_view, selector, relabelled), 15, f"the daemon's answer to {selector!r}"
        )


def _agree(admin: client.CoreV1Api, daemon: CachedCluster, selector: str, names: list[str]) -> bool:
    """The daemon selects from its store what the apiserver selects now."""
    return _selected_from_store(daemon, selector, names) == _selected_by_apiserver(admin, selector, names)
