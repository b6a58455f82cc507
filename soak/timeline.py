"""The timeline PNG of one run: fault bands and leader changes, namespaces not yet right and each
fault's convergence, and RSS per replica."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: before pyplot is imported
import matplotlib.pyplot as plt
from matplotlib.patches import Rectangle

COLOURS = {
    "leader-sigkill": "tab:red",
    "leader-sigstop": "tab:orange",
    "apiserver-kill": "tab:purple",
    "etcd-restart": "tab:brown",
    "openbao-restart": "tab:blue",
    "openbao-empty": "tab:cyan",
    "helper-hang": "tab:olive",
    "throttle-429": "tab:pink",
}


def draw(run: dict[str, Any], path: Path) -> None:
    start = run["started_at"]
    fig, (top, middle, bottom) = plt.subplots(3, 1, figsize=(14, 9), sharex=True)
    for ax in (top, middle, bottom):
        _bands(ax, run, start)
    polls = run["observer"]["polls"]
    top.plot([p["at"] - start for p in polls], [p["wrong"] for p in polls], lw=0.8, color="black")
    top.set_ylabel("(namespace, spec)\nnot right yet")
    top.set_title(f"soak seed {run['settings']['seed']}: {len(run['violations'])} violations")
    for fault in run["observer"]["faults"]:
        if fault["convergence"] is not None:
            middle.scatter(
                fault["cleared"] - start, fault["convergence"], color=COLOURS.get(fault["kind"], "grey"), zorder=3
            )
    middle.axhline(run["settings"]["slo_seconds"], ls="--", color="red", lw=0.8, label="SLO")
    middle.set_ylabel("convergence after\nthe fault cleared (s)")
    middle.legend(loc="upper right")
    for replica in sorted({u[1] for u in run["usage"]}):
        points = [(u[0] - start, u[3] / 2**20) for u in run["usage"] if u[1] == replica]
        bottom.plot([p[0] for p in points], [p[1] for p in points], ".", ms=2, label=replica)
    bottom.set_ylabel("RSS (MB)")
    bottom.set_xlabel("seconds since the churn started")
    bottom.legend(loc="upper right")
    handles = [Rectangle((0, 0), 1, 1, color=c, alpha=0.3) for c in COLOURS.values()]
    fig.legend(handles, list(COLOURS), loc="lower center", ncol=8, fontsize=8)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _bands(ax: Any, run: dict[str, Any], start: float) -> None:
    for fault in run["observer"]["faults"]:
        end = fault["cleared"] or fault["started"]
        ax.axvspan(fault["started"] - start, end - start, color=COLOURS.get(fault["kind"], "grey"), alpha=0.3)
