"""config/schema.json is generated from syncd.config and committed: it must never be stale."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml

from syncd.config import json_schema
from syncd.manifests import schema

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "config" / "schema.json"
EXAMPLE = ROOT / "config" / "syncd.example.yaml"


def test_the_committed_schema_is_what_the_code_generates() -> None:
    committed = COMMITTED.read_text(encoding="utf-8") if COMMITTED.exists() else ""
    assert committed == schema.schema_text(), (
        f"{COMMITTED.relative_to(ROOT)} is stale: regenerate it with `{schema.REGENERATE}` "
        "(or `python -m syncd.manifests.schema > config/schema.json`) and commit it"
    )


def test_the_schema_is_draft_2020_12_and_closed() -> None:
    generated = json_schema()
    assert generated["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert generated["required"] == ["credentials", "secrets"]
    objects = [generated, *generated["$defs"].values()]
    assert all(o["additionalProperties"] is False for o in objects), "unknown keys are errors in syncd"


def test_duration_defaults_are_written_as_users_write_them() -> None:
    schedule = json_schema()["$defs"]["Schedule"]["properties"]
    assert schedule["interval"]["default"] == "5m"
    assert schedule["jitter"]["default"] == "30s"
    assert "PT" not in schema.schema_text()


def test_print_and_write_produce_the_same_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert schema.main([]) == 0
    printed = capsys.readouterr().out
    target = tmp_path / "schema.json"
    assert schema.main(["--write", str(target)]) == 0
    assert target.read_text(encoding="utf-8") == printed == schema.schema_text()
    assert json.loads(printed) == json_schema()


def test_check_fails_on_a_stale_file_and_names_the_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "schema.json"
    target.write_text("{}\n")
    assert schema.main(["--check", str(target)]) == 1
    assert "python -m syncd.manifests.schema --write" in capsys.readouterr().err
    schema.main(["--write", str(target)])
    assert schema.main(["--check", str(target)]) == 0


def test_the_example_config_is_valid_against_the_schema() -> None:
    # jsonschema is in the dev extra: a missing one fails here, never skips.
    example = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(json_schema()).validate(example)


def _resolve(root: dict[str, Any], node: dict[str, Any]) -> list[dict[str, Any]]:
    """The object schemas a node may be: follows $ref, anyOf and array items."""
    if "$ref" in node:
        return _resolve(root, root["$defs"][node["$ref"].rsplit("/", 1)[1]])
    free_form = isinstance(node.get("additionalProperties"), dict)  # labels, annotations: any key
    found = [node] if "properties" in node or free_form else []
    for option in [*node.get("anyOf", []), *node.get("oneOf", [])]:
        found += _resolve(root, option)
    if "items" in node:
        found += _resolve(root, node["items"])
    return found


def _unknown_keys(root: dict[str, Any], node: dict[str, Any], value: object, path: str) -> list[str]:
    if isinstance(value, list):
        return [k for item in value for k in _unknown_keys(root, node, item, path)]
    if not isinstance(value, dict):
        return []
    options = _resolve(root, node)
    unknown: list[str] = []
    for key, child in value.items():
        matches = [o.get("properties", {}).get(key, o.get("additionalProperties")) for o in options]
        matches = [m for m in matches if isinstance(m, dict)]
        if not matches:
            unknown.append(f"{path}{key}")
        for match in matches:
            unknown += _unknown_keys(root, match, child, f"{path}{key}.")
    return unknown


def test_every_key_of_the_example_is_in_the_schema() -> None:
    """Runs without the jsonschema package: at least the key names of schema and example agree."""
    root = json_schema()
    example = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    assert _unknown_keys(root, root, example, "") == []
    assert _unknown_keys(root, root, {"schedule": {"intervall": "5m"}}, "") == ["schedule.intervall"]
