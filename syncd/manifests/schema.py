"""Writes config/schema.json, the JSON Schema of the config file, from the code (syncd.config).

python -m syncd.manifests.schema > config/schema.json     # print it
python -m syncd.manifests.schema --write                  # write config/schema.json (or --write PATH)
python -m syncd.manifests.schema --check                  # exit 1 when the committed file is stale
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from syncd.config import json_schema

DEFAULT_PATH = Path("config/schema.json")
REGENERATE = "python -m syncd.manifests.schema --write"


def schema_text() -> str:
    """The exact text of config/schema.json: stable key order, 2-space indent, final newline."""
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m syncd.manifests.schema", description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--write", nargs="?", const=DEFAULT_PATH, type=Path, metavar="PATH", help=f"default {DEFAULT_PATH}"
    )
    mode.add_argument(
        "--check", nargs="?", const=DEFAULT_PATH, type=Path, metavar="PATH", help=f"default {DEFAULT_PATH}"
    )
    args = parser.parse_args(argv)
    text = schema_text()
    if args.write is not None:
        args.write.write_text(text, encoding="utf-8")
    elif args.check is not None:
        try:
            current = args.check.read_text(encoding="utf-8")
        except OSError as exc:
            print(f"{args.check}: {exc.strerror or exc}; run `{REGENERATE}`", file=sys.stderr)
            return 1
        if current != text:
            print(f"{args.check} is stale; run `{REGENERATE}`", file=sys.stderr)
            return 1
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
