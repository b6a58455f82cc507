"""Field types and small checks shared by the config models."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer
from pydantic.json_schema import WithJsonSchema

from syncd.core import durations
from syncd.registry.credential_rules import registry_problem
from syncd.registry.keys import key_problem

_DURATION_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "pattern": durations.PATTERN, "examples": ["30s", "5m", "12h", "1h30m"]},
        {"type": "number", "minimum": 0, "description": "seconds"},
    ]
}
Duration = Annotated[
    dt.timedelta,
    BeforeValidator(durations.parse_duration),
    PlainSerializer(durations.format_duration, return_type=str),
    WithJsonSchema(_DURATION_SCHEMA),
]
Registry = Annotated[str, Field(min_length=1, description="registry host[:port], as in `docker login HOST`")]
# Patterns are published in the JSON Schema and checked by validators with friendlier messages.
HELPER_NAME = r"^[A-Za-z0-9][-A-Za-z0-9_.]*$"
SERVER_ADDRESS = r"^[^\s:]*:[0-9]{1,5}$"


def _fullmatch(pattern: str, value: str) -> bool:
    return re.fullmatch(pattern.removeprefix("^").removesuffix("$"), value) is not None


def is_helper_name(value: str) -> bool:
    """What follows `docker-credential-`: a name, never a path (the config and docker config.json alike)."""
    return _fullmatch(HELPER_NAME, value)


def _positive(value: dt.timedelta) -> dt.timedelta:
    if value <= dt.timedelta(0):
        raise ValueError("must be longer than 0s")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_registry(value: str) -> str:
    problem = key_problem(value) or registry_problem(value)
    if problem:
        raise ValueError(problem)
    return value
