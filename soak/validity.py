"""Is one managed Secret whole? The observer's own reading of a dockerconfigjson Secret.

Independent of syncd's code on purpose: what syncd would call valid is not the question.
Problems name fields and generations, never a value.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

DOCKER_CONFIG_TYPE = "kubernetes.io/dockerconfigjson"
HASH_ANNOTATION = "syncd.io/content-hash"


@dataclass(frozen=True)
class Judgement:
    problems: tuple[str, ...]
    generation: int | None  # the credential's generation it holds, when whole


def judge(secret: dict[str, Any], registry: str, generation_of: Callable[[str], int | None]) -> Judgement:
    """Type, data, hash annotation, exactly the one registry, a complete login of a known generation."""
    if secret.get("type") != DOCKER_CONFIG_TYPE:
        return Judgement(("type is not dockerconfigjson",), None)
    encoded = (secret.get("data") or {}).get(".dockerconfigjson")
    if not encoded:
        return Judgement(("blank: no .dockerconfigjson",), None)
    try:
        content = base64.b64decode(encoded, validate=True)
        auths = json.loads(content)["auths"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        return Judgement(("invalid: not a dockerconfigjson document",), None)
    annotations = (secret.get("metadata") or {}).get("annotations") or {}
    problems = []
    if annotations.get(HASH_ANNOTATION) != "sha256:" + hashlib.sha256(content).hexdigest():
        problems.append("half-written: content-hash annotation does not match the data")
    if not isinstance(auths, dict) or set(auths) != {registry}:
        return Judgement((*problems, "invalid: registries are not exactly the spec's"), None)
    return _login(auths[registry], generation_of, problems)


def _login(entry: Any, generation_of: Callable[[str], int | None], problems: list[str]) -> Judgement:
    if not isinstance(entry, dict):
        return Judgement((*problems, "invalid: registry entry is not an object"), None)
    username, password = entry.get("username"), entry.get("password")
    if not username or not password:
        return Judgement((*problems, "blank: empty username or password"), None)
    expected_auth = base64.b64encode(f"{username}:{password}".encode()).decode()
    if entry.get("auth") != expected_auth:
        problems.append("invalid: auth is not base64(username:password)")
    generation = generation_of(str(password))
    if generation is None:
        problems.append("invalid: a password the source never held")
    return Judgement(tuple(problems), generation)
