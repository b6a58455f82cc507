"""Reading the config: YAML (duplicate keys refused) -> models, every problem listed with its key path."""

from __future__ import annotations

from collections.abc import Hashable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from syncd.config.checks import cross_reference_problems
from syncd.config.messages import kind, problem
from syncd.config.models import Config
from syncd.core.errors import ConfigError, ConfigProblem


def parse_config(raw: object, source: str = "config") -> Config:
    """Validate an already-parsed mapping; raise ConfigError listing every problem."""
    if raw is None:
        raise ConfigError(source, [ConfigProblem("", "the config is empty: expected credentials: and secrets:")])
    if not isinstance(raw, dict):
        found = f"expected a mapping (credentials:, secrets:, ...) at the top level, got {kind(raw)}"
        raise ConfigError(source, [ConfigProblem("", found)])
    problems: list[ConfigProblem] = []
    config: Config | None = None
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        problems = [problem(e, raw) for e in exc.errors(include_url=False, include_input=False)]
    problems += cross_reference_problems(raw)
    if problems or config is None:
        raise ConfigError(source, problems)
    return config


# --- reading the file --------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys: PyYAML would silently keep the last one."""


_MERGE_TAG = "tag:yaml.org,2002:merge"


def _construct_mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[object] = set()
    for key_node, _ in node.value:
        if key_node.tag == _MERGE_TAG:  # `<<: *anchor` may be overridden by the mapping's own keys
            continue
        key = loader.construct_object(key_node, deep=deep)
        if isinstance(key, Hashable) and key in seen:
            message = f"duplicate key {key!r} (YAML would keep only the last one)"
            raise yaml.constructor.ConstructorError(None, None, message, key_node.start_mark)
        if isinstance(key, Hashable):
            seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _line_column(text: str, offset: int) -> str:
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return f"line {line}, column {column}"


def _yaml_problem(exc: yaml.YAMLError, text: str) -> ConfigProblem:
    if isinstance(exc, yaml.reader.ReaderError):
        char = f"U+{exc.character:04X}" if isinstance(exc.character, int) else repr(exc.character)
        return ConfigProblem("", f"{_line_column(text, exc.position)}: character {char} is not allowed in YAML")
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    problem = getattr(exc, "problem", None) or "invalid YAML"
    context = getattr(exc, "context", None)
    if context and not context.startswith("while"):
        problem = f"{context}, {problem}"
    return ConfigProblem("", f"{where}{problem}")


def _read_text(path: Path) -> str:
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise ConfigError(str(path), [ConfigProblem("", f"cannot read the file: {exc.strerror or exc}")]) from exc
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError as exc:
        where = _line_column(content.decode("utf-8", errors="replace"), len(content[: exc.start].decode("utf-8")))
        raise ConfigError(str(path), [ConfigProblem("", f"{where}: the file is not UTF-8 text")]) from exc


def load_config(path: Path) -> Config:
    """Read and validate a YAML config file."""
    text = _read_text(path)
    try:
        raw = yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), [_yaml_problem(exc, text)]) from exc
    except RecursionError as exc:
        raise ConfigError(str(path), [ConfigProblem("", "the YAML is nested too deeply")]) from exc
    return parse_config(raw, str(path))
