"""`python -m tests.harness up --dir D` starts everything; `down --dir D` stops it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tests.harness.process import HarnessError
from tests.harness.stack import Stack


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.harness", description=__doc__)
    parser.add_argument("action", choices=["up", "down"])
    parser.add_argument("--dir", required=True, type=Path, help="state folder: kubeconfig, env, logs, data")
    args = parser.parse_args()
    stack = Stack(args.dir)
    if args.action == "down":
        stack.down()
        print(f"stopped everything started under {stack.dir}")
        return 0
    try:
        stack.up()
    except HarnessError as exc:
        print(f"harness: {exc}", file=sys.stderr)
        return 1
    print(f"up: kubeconfig {stack.kube.kubeconfig}, environment in {stack.env_path} (source it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
