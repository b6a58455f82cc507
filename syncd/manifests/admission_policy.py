"""The ValidatingAdmissionPolicy that holds syncd's ServiceAccount to what syncd writes.

RBAC cannot limit `create` by name, and `get` by name covers whatever syncd itself created: with
the RBAC alone a compromised syncd can create a `kubernetes.io/service-account-token` Secret of a
granted name in kube-system, let the token controller fill it in, and read it back (a
cluster-admin token). The apiserver enforces this policy on every request of syncd's
ServiceAccount, no webhook involved:

- Secrets created or updated: type `kubernetes.io/dockerconfigjson`, syncd's managed-by and
  instance labels, a name a spec of the config grants, in a namespace that spec may serve (not
  excluded; kube-system only where a spec lists it in `names`).
- Secrets updated or deleted: only those that already carry this instance's label (or 0.1.0's
  managed-by label without an instance, which syncd takes over; or, for a spec with
  `on_conflict: adopt`, an unlabelled Secret of its name).
- With the admission webhook (and no `admission.tls`): its one kubernetes.io/tls Secret too, by
  name, in `admission.namespace` only, with the same labels.
- ServiceAccounts: updates only, changing nothing but `imagePullSecrets` entries of granted names
  and syncd's own annotation.

Every expression is plain CEL over list literals, so the Helm chart renders the same text from
its values (tests/integration/test_helm_chart.py compares the two).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from syncd.config import Config, SecretSpec
from syncd.config.selection import PROTECTED_NAMESPACE
from syncd.core.values import (
    ADDED_PULL_SECRETS_ANNOTATION,
    INSTANCE_LABEL,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    SECRET_TYPE,
)

ADMISSION = "admissionregistration.k8s.io/v1"
TLS_TYPE = "kubernetes.io/tls"
BINDING_KIND = "ValidatingAdmissionPolicyBinding"
# Go's regexp.QuoteMeta set: Helm's regexQuoteMeta escapes exactly these, so both render alike.
_REGEX_SPECIALS = set("\\.+*?()|[]{}^$")


def glob_regex(glob: str) -> str:
    """An fnmatch glob (`*`, `?`, `[...]`, `[!...]`) as an anchored RE2 regex for CEL `matches`."""
    out, i = [], 0
    while i < len(glob):
        char = glob[i]
        closing = glob.find("]", i + 2) if char == "[" else -1
        if char == "*":
            out.append(".*")
        elif char == "?":
            out.append(".")
        elif closing > 0:
            body = glob[i + 1 : closing]
            out.append("[^" + body[1:] + "]" if body.startswith("!") else "[" + body + "]")
            i = closing
        else:
            out.append("\\" + char if char in _REGEX_SPECIALS else char)
        i += 1
    return "^" + "".join(out) + "$"


def _label_is(labels: str, key: str, value: str) -> str:
    return f"{labels}[?{_cel(key)}].orValue('') == {_cel(value)}"


def _cel(value: object) -> str:
    """A CEL literal: JSON strings and lists of strings are valid CEL as they are."""
    return json.dumps(value, separators=(",", ":"))


def namespace_allowed(spec: SecretSpec, namespace: str = "request.namespace") -> str:
    """CEL: may this spec's Secret live in `namespace` (an expression)."""
    terms = [f"!{namespace}.matches({_cel(glob_regex(g))})" for g in sorted(set(spec.namespaces.exclude))]
    if PROTECTED_NAMESPACE not in spec.namespaces.names:
        terms.append(f"{namespace} != {_cel(PROTECTED_NAMESPACE)}")
    return " && ".join(terms) or "true"


def name_allowed_here(specs: Iterable[SecretSpec], name: str) -> str:
    """CEL: is `name` (an expression) the name of a spec that may write in the request's namespace."""
    terms = [f"({name} == {_cel(spec.name)} && {namespace_allowed(spec)})" for spec in specs]
    return " || ".join(terms) or "false"


def _pairs(pairs: list[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"name": name, "expression": expression} for name, expression in pairs]


def _secret_variables(config: Config) -> list[dict[str, str]]:
    adopt = sorted({s.name for s in config.secrets if s.on_conflict == "adopt"})
    old = "variables.oldLabels"
    return _pairs(
        [
            ("labels", "object.metadata.?labels.orValue({})"),
            ("oldLabels", "oldObject.metadata.?labels.orValue({})"),
            ("oldOurs", _label_is(old, INSTANCE_LABEL, config.instance)),
            (
                "oldLegacy",
                f"{_label_is(old, MANAGED_BY_LABEL, MANAGED_BY_VALUE)} && !({_cel(INSTANCE_LABEL)} in {old})",
            ),
            (
                "oldAdoptable",
                f"oldObject.metadata.name in {_cel(adopt)}"
                f" && !({_cel(MANAGED_BY_LABEL)} in {old}) && !({_cel(INSTANCE_LABEL)} in {old})",
            ),
        ]
    )


def webhook_tls(config: Config) -> str:
    """CEL: is the request about the admission webhook's own TLS Secret (when syncd keeps it)."""
    admission = config.admission
    if not admission.enabled or admission.tls is not None:
        return "false"
    return f"request.namespace == {_cel(admission.namespace)} && request.name == {_cel(config.webhook_secret)}"


def _secret_validations(config: Config) -> list[dict[str, str]]:
    writes = "request.operation == 'DELETE'"
    tls = webhook_tls(config)
    own_tls = f"({tls} && object.type == {_cel(TLS_TYPE)})"
    type_check = f"{writes} || object.type == {_cel(SECRET_TYPE)}"
    name_check = f"{writes} || {name_allowed_here(config.secrets, 'object.metadata.name')}"
    return [
        {
            "expression": type_check if tls == "false" else f"{type_check} || {own_tls}",
            "message": f"syncd may write only Secrets of type {SECRET_TYPE}"
            + ("" if tls == "false" else " (and its webhook's kubernetes.io/tls Secret)"),
        },
        {
            "expression": f"{writes} || ({_label_is('variables.labels', MANAGED_BY_LABEL, MANAGED_BY_VALUE)}"
            f" && {_label_is('variables.labels', INSTANCE_LABEL, config.instance)})",
            "message": f"syncd's Secrets carry {MANAGED_BY_LABEL}={MANAGED_BY_VALUE} and "
            f"{INSTANCE_LABEL}={config.instance}",
        },
        {
            "expression": name_check if tls == "false" else f"{name_check} || ({tls})",
            "message": "no secret spec of syncd's config writes a Secret of this name in this namespace "
            "(excluded, kube-system not listed in `names`, or a name the config does not have)",
        },
        {
            "expression": "request.operation == 'CREATE' || variables.oldOurs || variables.oldLegacy"
            " || (request.operation == 'UPDATE' && variables.oldAdoptable)",
            "message": f"syncd may update or delete only Secrets labelled {INSTANCE_LABEL}={config.instance}",
        },
    ]


def _account_variables(granted: list[str]) -> list[dict[str, str]]:
    pulls = "{0}.?imagePullSecrets.orValue([]).map(r, r.?name.orValue(''))"
    return _pairs(
        [
            ("granted", _cel(granted)),
            ("annotations", "object.metadata.?annotations.orValue({})"),
            ("oldAnnotations", "oldObject.metadata.?annotations.orValue({})"),
            ("pulls", pulls.format("object")),
            ("oldPulls", pulls.format("oldObject")),
        ]
    )


def _unchanged(field: str) -> str:
    new, old = f"object.{field}", f"oldObject.{field}"
    return f"has({new}) == has({old}) && (!has({new}) || {new} == {old})"


def _account_validations(config: Config) -> list[dict[str, str]]:
    fields = ["secrets", "automountServiceAccountToken", "metadata.labels", "metadata.ownerReferences"]
    untouched = " && ".join(_unchanged(f) for f in [*fields, "metadata.finalizers"])
    own = _cel(ADDED_PULL_SECRETS_ANNOTATION)
    new, old = "variables.annotations", "variables.oldAnnotations"
    same_annotations = (
        f"{new}.all(k, k == {own} || (k in {old} && {old}[k] == {new}[k])) && {old}.all(k, k == {own} || k in {new})"
    )
    return [
        {
            "expression": "request.operation == 'UPDATE'",
            "message": "syncd may only patch ServiceAccounts, never create or delete them",
        },
        {
            "expression": f"{untouched} && {same_annotations}",
            "message": f"syncd may change only imagePullSecrets and its annotation {ADDED_PULL_SECRETS_ANNOTATION} "
            "of a ServiceAccount",
        },
        {
            "expression": "variables.oldPulls.all(n, n in variables.granted || n in variables.pulls)"
            f" && variables.pulls.all(n, n in variables.oldPulls || {name_allowed_here(config.secrets, 'n')})",
            "message": "syncd may add or remove only imagePullSecrets entries of the Secrets it writes "
            "(and add them only in namespaces its specs serve)",
        },
    ]


def policy_names(role: str) -> tuple[str, str]:
    """The Secrets policy and the ServiceAccounts policy: one schema each, so that CEL type-checks."""
    return f"{role}-secrets", f"{role}-serviceaccounts"


def _policy(
    name: str, resource: str, user: str, variables: list[dict[str, str]], validations: list[dict[str, str]]
) -> list[dict[str, Any]]:
    rule = {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE", "DELETE"]}
    spec = {
        "failurePolicy": "Fail",
        "matchConstraints": {"resourceRules": [{**rule, "resources": [resource]}]},
        "matchConditions": [
            {"name": "syncd-service-account", "expression": f"request.userInfo.username == {_cel(user)}"}
        ],
        "variables": variables,
        "validations": [{**v, "reason": "Forbidden"} for v in validations],
    }
    binding = {"policyName": name, "validationActions": ["Deny"]}
    return [
        {"apiVersion": ADMISSION, "kind": "ValidatingAdmissionPolicy", "metadata": {"name": name}, "spec": spec},
        {"apiVersion": ADMISSION, "kind": BINDING_KIND, "metadata": {"name": name}, "spec": binding},
    ]


def manifests(
    config: Config, *, role: str, granted: list[str], namespace: str, service_account: str
) -> list[dict[str, Any]]:
    """The two policies and their bindings for syncd's ServiceAccount `namespace/service_account`."""
    user = f"system:serviceaccount:{namespace}:{service_account}"
    secrets, accounts = policy_names(role)
    return [
        *_policy(secrets, "secrets", user, _secret_variables(config), _secret_validations(config)),
        *_policy(accounts, "serviceaccounts", user, _account_variables(granted), _account_validations(config)),
    ]
