"""Checks that span sections (a reference to an unknown credential, duplicate names), run on the
raw mapping so that they add to pydantic's findings instead of waiting for them to pass."""

from __future__ import annotations

from typing import Any

from syncd.core.errors import ConfigProblem
from syncd.registry.credential_rules import registry_problem
from syncd.registry.keys import canonical_key, key_problem


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _credential_names(raw: dict[Any, Any]) -> dict[str, int] | None:
    """name -> first index; None when references cannot be checked (no list, or an entry without a name)."""
    credentials = raw.get("credentials")
    if not isinstance(credentials, list) or not credentials:
        return None
    names: dict[str, int] = {}
    for index, credential in enumerate(credentials):
        if not isinstance(credential, dict) or not isinstance(credential.get("name"), str):
            return None
        names.setdefault(credential["name"], index)
    return names


def _duplicate_names(section: str, what: str, entries: list[Any]) -> list[ConfigProblem]:
    """`name` given twice in a list section, reported at the second one."""
    problems: list[ConfigProblem] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(entries):
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str):
            continue
        if name in seen:
            where, first = f"{section}[{index}].name", f"{section}[{seen[name]}]"
            problems.append(ConfigProblem(where, f"duplicate {what} name {name!r} (first at {first})"))
        seen.setdefault(name, index)
    return problems


def _credential_problems(raw: dict[Any, Any]) -> list[ConfigProblem]:
    credentials = _list(raw.get("credentials"))
    problems = _duplicate_names("credentials", "credential", credentials)
    for index, credential in enumerate(credentials):
        if isinstance(credential, dict) and credential.get("vault") is not None and raw.get("vault") is None:
            message = "reads from Vault, but there is no top-level `vault:` block"
            problems.append(ConfigProblem(f"credentials[{index}].vault", message))
    return problems


def _registries(credential: object) -> list[str]:
    """The `auths` keys a raw credential entry will render, as far as they can be known."""
    if not isinstance(credential, dict):
        return []
    if credential.get("docker_config") is not None:
        written = [r for r in _list(credential.get("registries")) if isinstance(r, str)]
    else:
        written = [credential["registry"]] if isinstance(credential.get("registry"), str) else []
    # docker.io and index.docker.io are one key; a malformed one is reported where it is written.
    return [canonical_key(r) for r in written if not (registry_problem(r) or key_problem(r))]


def _reference_problems(index: int, spec: dict[Any, Any], raw: dict[Any, Any]) -> list[ConfigProblem]:
    known = _credential_names(raw)
    credentials = _list(raw.get("credentials"))
    problems: list[ConfigProblem] = []
    listed: dict[str, int] = {}
    registries: dict[str, str] = {}
    for ref_index, ref in enumerate(_list(spec.get("credentials"))):
        if not isinstance(ref, str):
            continue
        where = f"secrets[{index}].credentials[{ref_index}]"
        if ref in listed:
            problems.append(ConfigProblem(where, f"{ref!r} is listed twice"))
            continue
        listed[ref] = ref_index
        if known is None:
            continue
        if ref not in known:
            problems.append(ConfigProblem(where, f"unknown credential {ref!r}"))
            continue
        for registry in _registries(credentials[known[ref]]):
            if registry in registries:
                message = f"registry {registry!r} is also given by credential {registries[registry]!r}"
                problems.append(ConfigProblem(where, f"{message}; one Secret holds one entry per registry"))
            registries.setdefault(registry, ref)
    return problems


def _secret_problems(raw: dict[Any, Any]) -> list[ConfigProblem]:
    specs = _list(raw.get("secrets"))
    problems = _duplicate_names("secrets", "secret", specs)
    for index, spec in enumerate(specs):
        if isinstance(spec, dict):
            problems += _reference_problems(index, spec, raw)
    return problems


def cross_reference_problems(raw: dict[Any, Any]) -> list[ConfigProblem]:
    """Checks that span sections; run on the raw mapping so they add to pydantic's findings."""
    return _credential_problems(raw) + _secret_problems(raw)
