"""Kubernetes label and name syntax, checked locally so that config errors name the key path.

Every pattern is applied with `fullmatch`: `$` would also accept a trailing newline, which a YAML
block scalar (`|`) easily adds and the apiserver rejects.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_NAME = r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)"
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_LABEL_KEY = re.compile(rf"(?:([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)/)?{_NAME}")
_LABEL_VALUE = re.compile(rf"(?:{_NAME})?")
_KEY_CHARS = r"[^\s!=<>(),]+"
_TERM = re.compile(
    rf"\s*(?:(?P<not>!)\s*(?P<nkey>{_KEY_CHARS})"
    rf"|(?P<key>{_KEY_CHARS})\s*(?:(?P<op>==|!=|=|<|>)\s*(?P<value>[^\s,()]*)"
    r"|\s+(?P<setop>in|notin)\s*\((?P<values>[^()]*)\))?)\s*"
)
_DIGITS = re.compile(r"[0-9]+")
# `>` and `<` compare as the apiserver does (strconv.ParseInt(s, 10, 64)): a label value has no
# sign, and one past int64 is no integer at all, so it matches neither `>` nor `<`.
_INT64_MAX = 2**63 - 1
_TERM_HELP = "expected key, !key, key=value, key!=value, key in (a,b), key notin (a,b), key>1, key<1"


def is_dns_subdomain(name: str) -> bool:
    """Secret and ServiceAccount names (RFC 1123 subdomain, at most 253 characters)."""
    return len(name) <= 253 and bool(_DNS_SUBDOMAIN.fullmatch(name))


def is_dns_label(name: str) -> bool:
    """Namespace names (RFC 1123 label, at most 63 characters)."""
    return bool(_DNS_LABEL.fullmatch(name))


def label_key_problem(key: str) -> str | None:
    if not _LABEL_KEY.fullmatch(key) or len(key.split("/", maxsplit=1)[0]) > 253:
        return f"{key!r} is not a valid label key (optional DNS prefix + '/' + name of at most 63 characters)"
    return None


def label_value_problem(value: str) -> str | None:
    if len(value) > 63 or not _LABEL_VALUE.fullmatch(value):
        return f"{value!r} is not a valid label value (at most 63 of [A-Za-z0-9-_.], alphanumeric at both ends)"
    return None


def _split_terms(selector: str) -> list[str]:
    """Split on commas that are not inside `in (...)` parentheses."""
    terms, depth, current = [], 0, ""
    for char in selector:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += char
    terms.append(current)
    return terms


def _term_problems(term: str) -> list[str]:
    if not term.strip():
        return ["an empty term (a stray comma?)"]
    match = _TERM.fullmatch(term)
    if not match:
        return [f"cannot parse {term.strip()!r} ({_TERM_HELP})"]
    key = match["nkey"] or match["key"]
    problems = [p for p in [label_key_problem(key)] if p]
    if match["op"] in ("<", ">"):
        if _integer(match["value"]) is None:
            problems.append(f"{term.strip()!r}: {match['op']} needs a whole number from 0 to {_INT64_MAX}")
        return problems
    values = [match["value"]] if match["op"] else []
    if match["setop"]:
        if not match["values"].strip():
            problems.append(f"{term.strip()!r}: {match['setop']} needs at least one value")
        in_set = _set_values(match["values"])
        if in_set is None:
            return [
                *problems,
                f"{term.strip()!r}: the values in parentheses are not a comma-separated list (a stray comma?)",
            ]
        values = sorted(in_set)
    return problems + [p for p in map(label_value_problem, values) if p]


def _set_values(inner: str) -> set[str] | None:
    """The values of `in (...)` / `notin (...)` as the apiserver's parser reads them (apimachinery
    labels.Parser.parseValues), None where it refuses them. Empty values come from commas: `()`,
    `(,)`, `(a,)` and `(a,,b)` hold "", but `(a,,)` and `(,,)` are refused."""
    tokens = re.findall(r",|[^\s,]+", inner)
    if not tokens:
        return {""}
    values: set[str] = set()
    at = 0
    while at < len(tokens):  # running out here is meeting `)` where a value or comma must come
        item = tokens[at]
        at += 1
        after = tokens[at] if at < len(tokens) else ")"
        if item != ",":
            values.add(item)
            if after == ")":
                return values
            if after != ",":
                return None
            continue
        if not values:
            values.add("")
        if after == ")":
            return values | {""}
        if after == ",":
            at += 1
            values.add("")
    return None


def selector_problems(selector: str) -> list[str]:
    """Problems with a label selector in kubectl syntax (`a=b,c!=d,e in (f,g),!h`)."""
    if not selector.strip():
        return ["the selector is empty"]
    return [problem for term in _split_terms(selector) for problem in _term_problems(term)]


def selector_matches(selector: str, labels: Mapping[str, str]) -> bool:
    """Whether `labels` satisfy a valid label selector, evaluated as the apiserver does.

    Lets one LIST of every namespace serve `names`, `patterns` and `selector` together, instead
    of a second LIST filtered by the apiserver. An absent key satisfies `!=`, `notin` and `!key`
    only; `<` and `>` need a label value that is an integer within int64.
    """
    return all(_term_matches(term, labels) for term in _split_terms(selector))


def _term_matches(term: str, labels: Mapping[str, str]) -> bool:
    match = _TERM.fullmatch(term)
    if match is None:
        raise ValueError(f"not a valid selector term: {term.strip()!r}")
    if match["not"]:
        return match["nkey"] not in labels
    value = labels.get(match["key"])
    if match["setop"]:
        wanted = _set_values(match["values"]) or set()
        return value in wanted if match["setop"] == "in" else value not in wanted
    return _compare(value, match["op"], match["value"])


def _compare(value: str | None, op: str | None, wanted: str) -> bool:
    """`key` (exists), `key=v`, `key==v`, `key!=v`, `key>n`, `key<n` against a label's value (None: absent)."""
    if op is None:
        return value is not None
    if op in ("=", "=="):
        return value == wanted
    if op == "!=":
        return value != wanted
    number, bound = _integer(value), _integer(wanted)
    if number is None or bound is None:
        return False
    return number > bound if op == ">" else number < bound


def _integer(value: str | None) -> int | None:
    """A label value read as the apiserver's ParseInt(value, 10, 64) reads it; None if it is not one."""
    if value is None or not _DIGITS.fullmatch(value) or int(value) > _INT64_MAX:
        return None
    return int(value)
