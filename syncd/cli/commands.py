"""Command line: parse arguments, load the config, hand off; exit codes of SPEC §2."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from syncd import __version__
from syncd.app import (
    ClusterOptions,
    build_cluster,
    build_reconciler,
    read_status_objects,
    repair_once,
    run_daemon,
    write_workers,
)
from syncd.cli.explain import check_login, explain
from syncd.cli.output import (
    explain_json,
    explain_table,
    plan_table,
    pullsync_json,
    pullsync_rows,
    pullsync_table,
    repairs_table,
    results_json,
    status_json,
    status_table,
    summary,
)
from syncd.cli.status import cluster_status
from syncd.config import Config, load_config
from syncd.core import logs
from syncd.core.errors import ConfigError, KubeError
from syncd.core.values import RunResult
from syncd.manifests import webhook
from syncd.manifests.rbac import render_yaml

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
log = logging.getLogger("syncd")


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, default=os.environ.get("SYNCD_CONFIG"), help="default $SYNCD_CONFIG")
    common.add_argument("--kubeconfig", help="default: in-cluster in a pod, else $KUBECONFIG or ~/.kube/config")
    common.add_argument("--context", help="kubeconfig context")
    common.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    common.add_argument("--log-format", choices=["json", "text"], help="default: text on a terminal, else json")
    return common


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="syncd", description="Sync registry credentials into Kubernetes Secrets.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = _common()
    once = commands.add_parser("once", parents=[common], help="sync every secret spec once, then exit")
    once.add_argument("--dry-run", action="store_true", help="print the plan; write nothing")
    once.add_argument("--output", choices=["table", "json"], default="table")
    commands.add_parser("run", parents=[common], help="the daemon: schedule, watches, /metrics, until SIGTERM")
    commands.add_parser("check-config", parents=[common], help="validate the config and print every problem")
    status = commands.add_parser("status", parents=[common], help="what is in the cluster now (no secret values)")
    status.add_argument("--output", choices=["table", "json"], default="table")
    status.add_argument(
        "--from-cluster",
        action="store_true",
        help="read the PullSecretSync objects the running syncd writes; no config file needed",
    )
    status.add_argument("--instance", help="with --from-cluster: only this installation's objects")
    explain = commands.add_parser(
        "explain", parents=[common], help="which pull Secret and login the kubelet offers for an image"
    )
    explain.add_argument("--namespace", required=True, help="the Pod's namespace")
    explain.add_argument("--image", required=True, help="the image reference as the Pod spec writes it")
    explain.add_argument("--service-account", default="default", help="the Pod's ServiceAccount (default: default)")
    explain.add_argument("--output", choices=["table", "json"], default="table")
    explain.add_argument(
        "--verify",
        action="store_true",
        help="also log in to the registry with each offered login, in the kubelet's order (no image is pulled)",
    )
    rbac = commands.add_parser("rbac", parents=[common], help="print the least-privilege RBAC for the config")
    rbac.add_argument("--namespace", default="syncd", help="namespace of syncd's ServiceAccount (default syncd)")
    rbac.add_argument("--service-account", default="syncd", help="syncd's ServiceAccount (default syncd)")
    commands.add_parser(
        "admission", parents=[common], help="print the admission webhook's configuration (and Service) for the config"
    )
    commands.add_parser("version", help="print the version")
    return parser


def _load(args: argparse.Namespace) -> Config:
    if args.config is None:
        raise ConfigError("config", [])
    return load_config(args.config)


def cmd_check_config(args: argparse.Namespace, config: Config) -> int:
    print(f"{args.config}: valid ({len(config.credentials)} credentials, {len(config.secrets)} secret specs)")
    return EXIT_OK


def cmd_once(args: argparse.Namespace, config: Config) -> int:
    options = ClusterOptions(args.kubeconfig, args.context)
    results = build_reconciler(config, options).sync_all(dry_run=args.dry_run)
    repairs = repair_once(config, options, results, dry_run=args.dry_run) if config.repair_pods else []
    if args.output == "json":
        print(results_json(results, repairs if config.repair_pods else None))
    else:
        print(plan_table(results) if args.dry_run else summary(results))
        if config.repair_pods:
            print(repairs_table(repairs))
    ok = all(r.result is RunResult.SUCCESS for r in results) and all(r.error is None for r in repairs)
    return EXIT_OK if ok else EXIT_FAILURE


def cmd_status(args: argparse.Namespace, config: Config) -> int:
    cluster = build_cluster(ClusterOptions(args.kubeconfig, args.context), write_workers())
    rows = cluster_status(cluster, config)
    print(status_json(rows) if args.output == "json" else status_table(rows))
    return EXIT_OK if all(r.state == "in_sync" for r in rows) else EXIT_FAILURE


def cmd_status_from_cluster(args: argparse.Namespace) -> int:
    """Exit 0 when every object is Ready, 1 otherwise (none found included)."""
    try:
        objects = read_status_objects(ClusterOptions(args.kubeconfig, args.context), args.instance)
    except KubeError as exc:
        print(f"syncd: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    rows = pullsync_rows(objects)
    print(pullsync_json(rows) if args.output == "json" else pullsync_table(rows))
    return EXIT_OK if rows and all(r["ready"] == "True" for r in rows) else EXIT_FAILURE


def cmd_explain(args: argparse.Namespace, config: Config) -> int:
    """Exit 0 when a login is offered and every listed Secret is readable and well formed (and, with
    --verify, the registry accepts one of the offered logins)."""
    cluster = build_cluster(ClusterOptions(args.kubeconfig, args.context), write_workers())
    explanation = explain(
        cluster,
        config,
        namespace=args.namespace,
        image=args.image,
        service_account=args.service_account,
        check=check_login if args.verify else None,
    )
    print(explain_json(explanation) if args.output == "json" else explain_table(explanation))
    return EXIT_OK if explanation.ok else EXIT_FAILURE


def cmd_rbac(args: argparse.Namespace, config: Config) -> int:
    print(
        render_yaml(
            config, config_path=str(args.config), namespace=args.namespace, service_account=args.service_account
        ),
        end="",
    )
    return EXIT_OK


def cmd_admission(args: argparse.Namespace, config: Config) -> int:
    print(webhook.render_yaml(config, config_path=str(args.config)), end="")
    return EXIT_OK


def cmd_run(args: argparse.Namespace, config: Config) -> int:
    """The daemon, until SIGTERM / SIGINT; it reloads the file itself when it changes."""
    return run_daemon(args.config, config, ClusterOptions(args.kubeconfig, args.context))


COMMANDS: dict[str, Callable[[argparse.Namespace, Config], int]] = {
    "run": cmd_run,
    "check-config": cmd_check_config,
    "once": cmd_once,
    "status": cmd_status,
    "rbac": cmd_rbac,
    "explain": cmd_explain,
    "admission": cmd_admission,
}


def _run(args: argparse.Namespace) -> int:
    try:
        config = _load(args)
    except ConfigError as exc:
        if not exc.problems:
            print("syncd: no config: pass --config FILE or set $SYNCD_CONFIG", file=sys.stderr)
        else:
            print(f"syncd: invalid config {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return COMMANDS[args.command](args, config)
    except ConfigError as exc:  # found only when used: a TLS pair under server.tls that does not load
        print(f"syncd: invalid config {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KubeError as exc:
        print(f"syncd: {exc}", file=sys.stderr)
        return EXIT_FAILURE


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    if args.command == "version":
        print(f"syncd {__version__}")
        return EXIT_OK
    logs.setup(args.log_level, args.log_format)
    try:
        if args.command == "status" and args.from_cluster:
            return cmd_status_from_cluster(args)
        return _run(args)
    except BrokenPipeError:  # `syncd status | head`: the reader left; not an error worth a traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
