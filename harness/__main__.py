"""`python -m harness up --dir D` starts everything; `down --dir D` stops it;
`push-image --dir D --repository demo/app` pushes a new private image to D's registry and prints
its reference."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from harness.oci import push_image
from harness.process import HarnessError
from harness.stack import Stack


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m harness", description=__doc__)
    parser.add_argument("action", choices=["up", "down", "push-image"])
    parser.add_argument("--dir", required=True, type=Path, help="state folder: kubeconfig, env, logs, data")
    parser.add_argument("--repository", default="demo/app", help="push-image: the repository to push to")
    parser.add_argument("--tag", default="v1", help="push-image: the tag")
    args = parser.parse_args()
    if args.action == "push-image":
        return _push_image(args.dir, args.repository, args.tag)
    # A node too: with the CLI's cluster, `kubectl create deployment` ends in a Running Pod.
    stack = Stack(args.dir, node=True)
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


def _push_image(state_dir: Path, repository: str, tag: str) -> int:
    """With the registry login `up` wrote into D/env."""
    env = dict(
        shlex.split(line.removeprefix("export "))[0].split("=", 1)
        for line in (state_dir / "env").read_text().splitlines()
        if line.startswith("export ")
    )
    host, user, password = (
        env[k] for k in ("SYNCD_TEST_REGISTRY", "SYNCD_TEST_REGISTRY_USER", "SYNCD_TEST_REGISTRY_PASSWORD")
    )
    try:
        print(push_image(host, user, password, repository, state_dir / "images" / repository.replace("/", "-"), tag))
    except HarnessError as exc:
        print(f"harness: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
