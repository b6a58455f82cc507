"""Pydantic's findings turned into ConfigProblems: a key path users can find, a message they can act on."""

from __future__ import annotations

import difflib
import json
import re
import types
import typing
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from syncd.config.credentials import CREDENTIAL_MODELS, ONE_SOURCE, SOURCE_KEYS
from syncd.config.models import FIELD_PROBLEM, Config
from syncd.core.errors import ConfigProblem

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def _child(node: object, part: int | str) -> object:
    if isinstance(node, dict):
        return node.get(part)
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return None


def problem(error: Any, raw: object) -> ConfigProblem:
    """One pydantic error as a ConfigProblem at the key path the user wrote."""
    loc, source = _untagged(tuple(error["loc"]))
    if error["type"] == FIELD_PROBLEM:  # a model's finding about one of its own fields
        loc = (*loc, error["ctx"]["field"])
    return ConfigProblem(path_of(loc, raw), message({**error, "loc": loc}, raw, source))


def _untagged(loc: tuple[int | str, ...]) -> tuple[tuple[int | str, ...], str | None]:
    """pydantic puts the chosen source's tag after `credentials[i]`: not a key the user wrote."""
    if len(loc) > 2 and loc[0] == "credentials" and isinstance(loc[1], int) and loc[2] in SOURCE_KEYS:
        return (*loc[:2], *loc[3:]), str(loc[2])
    return loc, None


def path_of(loc: Sequence[int | str], raw: object) -> str:
    """`secrets[0].namespaces.selector`; walks the input so that an int dict key is not shown as an index."""
    text, node = "", raw
    for part in loc:
        if part == "[key]":  # pydantic's marker for "the key itself is wrong"
            continue
        if isinstance(part, int) and not isinstance(node, dict):
            text += f"[{part}]"
        elif isinstance(part, str) and not _IDENTIFIER.fullmatch(part):
            text += f"[{json.dumps(part, ensure_ascii=False)}]"
        else:
            text += f".{part}" if text else str(part)
        node = _child(node, part)
    return text


def kind(value: object) -> str:
    """A YAML user's name for a parsed value's type."""
    if value is None:
        return "null"
    kinds: list[tuple[type, str]] = [(bool, "a boolean"), (int, "an integer"), (float, "a number")]
    kinds += [(str, "a string"), (list, "a list"), (dict, "a mapping")]
    return next((name for kind, name in kinds if isinstance(value, kind)), type(value).__name__)


def _model_of(annotation: object) -> type[BaseModel] | None:
    """The model inside `Model`, `Model | None`, `list[Model]`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, list):
        return next((m for arg in typing.get_args(annotation) if (m := _model_of(arg))), None)
    return None


def _known_keys(parent: Sequence[int | str], source: str | None) -> list[str]:
    model: type[BaseModel] | None = Config
    for index, part in enumerate(parent):
        if index == 1 and parent[0] == "credentials":
            model = next((m for m in CREDENTIAL_MODELS if m.source == source), None)
        if isinstance(part, int) or model is None:
            continue
        field = model.model_fields.get(part)
        model = _model_of(field.annotation) if field else None
    return list(model.model_fields) if model else []


def _unknown_key(loc: Sequence[int | str], source: str | None) -> str:
    known = _known_keys(loc[:-1], source)
    close = difflib.get_close_matches(str(loc[-1]), known, n=1)
    if close:
        return f"unknown key (did you mean {close[0]!r}?)"
    return f"unknown key (expected one of: {', '.join(known)})" if known else "unknown key"


_TYPE_NAMES = {
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "dict_type": "a mapping",
    "list_type": "a list",
    "string_type": "a string",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "float_type": "a number",
    "float_parsing": "a number",
    "int_type": "an integer",
    "int_parsing": "an integer",
}


def _value_at(loc: Sequence[int | str], raw: object) -> object:
    value = raw
    for part in loc:
        value = _child(value, part)
    return value


def _one_source(error: Any, raw: object) -> str:
    entry = _value_at(error["loc"], raw)
    if not isinstance(entry, dict):
        return f"expected a mapping, got {kind(entry)}"
    found = [key for key in SOURCE_KEYS if isinstance(entry, dict) and entry.get(key) is not None]
    return f"{error['msg']} (found: {', '.join(found) or 'none'})"


def _fixed(error: Any) -> str | None:
    """Messages that need nothing but the error's type and place."""
    error_type = error["type"]
    if error_type == "missing":
        return "required key is missing"
    if error_type in ("too_short", "string_too_short") and error.get("ctx", {}).get("min_length") == 1:
        return "must not be empty"
    if error_type == "invalid_key" or "[key]" in error["loc"]:
        return "this key is not a string (quote it in the YAML)"
    return None


def _wrong_type(error: Any, raw: object) -> str:
    value = _value_at(error["loc"], raw)
    quote = error["type"] == "string_type" and isinstance(value, bool)
    hint = " (quote it: YAML reads yes/no/on/off/true/false as booleans)" if quote else ""
    return f"expected {_TYPE_NAMES[error['type']]}, got {kind(value)}{hint}"


def message(error: Any, raw: object, source: str | None = None) -> str:
    error_type: str = error["type"]
    if error_type == "extra_forbidden":
        return _unknown_key(error["loc"], source)
    if error_type == ONE_SOURCE:
        return _one_source(error, raw)
    fixed = _fixed(error)
    if fixed is not None:
        return fixed
    if error_type in _TYPE_NAMES:
        return _wrong_type(error, raw)
    return str(error["msg"]).removeprefix("Value error, ")
