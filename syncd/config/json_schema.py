"""The config file's JSON Schema (committed as config/schema.json by syncd.manifests.schema)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic.json_schema import GenerateJsonSchema
from pydantic_core import core_schema

from syncd.config.models import Config
from syncd.core import durations


class _SchemaGenerator(GenerateJsonSchema):
    """Durations as users write them (`30s`, not `PT30S`), and no auto-generated titles."""

    def encode_default(self, dft: Any) -> Any:
        if isinstance(dft, dt.timedelta):
            return durations.format_duration(dft)
        return super().encode_default(dft)

    def field_title_should_be_set(self, schema: Any) -> bool:  # noqa: ARG002 - overrides
        return False

    def model_schema(self, schema: core_schema.ModelSchema) -> dict[str, Any]:
        result = super().model_schema(schema)
        result.pop("title", None)
        return result


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the config file, as committed in config/schema.json."""
    schema = Config.model_json_schema(mode="validation", schema_generator=_SchemaGenerator)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "syncd config",
        **schema,
    }
