"""Render bench/README.md's results section and the rollout chart from results.json.

`python -m bench.report [results.json]` re-renders without re-running anything.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

from bench.measure import SYNCD_RESOURCES

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
HERE = Path(__file__).parent


def _s(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f} s" if value < 100 else f"{value:.0f} s"


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a and b else "-"


def _load(entry: dict[str, Any], *phases: str) -> str:
    """The share of the machine's CPU other people's processes used, per phase (the highest of a phase's runs)."""
    found = []
    for phase in phases:
        runs = (entry.get(phase) or {}).get("runs") or [entry.get(phase) or {}]
        shares = [(run.get("cpu") or {}).get("others") for run in runs]
        known = [s for s in shares if s is not None]
        found.append(f"{max(known):.0%}" if known else "-")
    return " / ".join(found)


def _sizes(results: dict[str, Any]) -> list[dict[str, Any]]:
    return [results["sizes"][k] for k in sorted(results["sizes"], key=int)]


def kubectl_per_namespace(results: dict[str, Any]) -> tuple[int, float] | None:
    """(N, seconds per namespace) of the largest kubectl run: the loop is strictly sequential."""
    measured = [e for e in _sizes(results) if (e.get("kubectl") or {}).get("seconds") is not None]
    if not measured:
        return None
    largest = measured[-1]
    return largest["n"], largest["kubectl"]["seconds"] / largest["n"]


def kubectl_figure(results: dict[str, Any], entry: dict[str, Any]) -> tuple[float | None, bool]:
    """The kubectl seconds at this size, and whether they are extrapolated rather than measured."""
    measured = (entry.get("kubectl") or {}).get("seconds")
    if measured is not None:
        return measured, False
    basis = kubectl_per_namespace(results)
    return (basis[1] * entry["n"], True) if basis else (None, False)


def rollout_table(results: dict[str, Any]) -> list[str]:
    lines = [
        "| namespaces | syncd (in-process `sync_all`, best of runs) | `syncd once` (subprocess) "
        "| floor (raw HTTP, best concurrency) | kubectl loop | syncd / floor | kubectl / syncd "
        "| others' CPU (syncd / floor / kubectl) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    basis = kubectl_per_namespace(results)
    for entry in _sizes(results):
        if "syncd" not in entry:
            continue
        syncd, floor = entry["syncd"]["seconds"], entry["floor"]["seconds"]
        kubectl, extrapolated = kubectl_figure(results, entry)
        kubectl_text, ratio = _s(kubectl), _ratio(kubectl, syncd)
        if extrapolated and basis:
            kubectl_text = f"not run; ~{_s(kubectl)} extrapolated from N={basis[0]:,}"
            ratio = f"~{ratio} (extrapolated)"
        runs = ", ".join(_s(r["seconds"]) for r in entry["syncd"]["runs"])
        lines.append(
            f"| {entry['n']:,} | {_s(syncd)} ({runs}) | {_s(entry['syncd_once']['seconds'])} "
            f"| {_s(floor)} (x{entry['floor']['best_concurrency']}) | {kubectl_text} | {_ratio(syncd, floor)} "
            f"| {ratio} | {_load(entry, 'syncd', 'floor', 'kubectl')} |"
        )
    return lines


def _best_run(entry: dict[str, Any]) -> dict[str, Any]:
    return dict(min(entry["syncd"]["runs"], key=lambda r: r["seconds"]))


def cpu_table(results: dict[str, Any]) -> list[str]:
    """CPU seconds are steadier than wall time on a shared machine; the floor row covers all its runs."""
    lines = [
        "| namespaces | syncd: client / servers | `syncd once`: client / servers "
        "| floor, all concurrencies: client / servers | kubectl loop: client / servers |",
        "|---:|---:|---:|---:|---:|",
    ]

    def pair(phase: dict[str, Any] | None) -> str:
        cpu = (phase or {}).get("cpu") or {}
        if "client_cpu_seconds" not in cpu:
            return "-"
        return f"{cpu['client_cpu_seconds']:.2f} / {cpu['server_cpu_seconds']:.2f}"

    for entry in _sizes(results):
        if "syncd" in entry:
            lines.append(
                f"| {entry['n']:,} | {pair(_best_run(entry))} | {pair(entry['syncd_once'])} "
                f"| {pair(entry['floor'])} | {pair(entry.get('kubectl'))} |"
            )
    return lines


def floor_table(results: dict[str, Any]) -> list[str]:
    levels = sorted({int(c) for e in _sizes(results) if "floor" in e for c in e["floor"]["by_concurrency"]})
    lines = ["| namespaces | " + " | ".join(f"x{c}" for c in levels) + " |", "|---:|" + "---:|" * len(levels)]
    for entry in _sizes(results):
        if "floor" in entry:
            runs = entry["floor"]["by_concurrency"]
            lines.append(f"| {entry['n']:,} | " + " | ".join(_s(runs.get(str(c))) for c in levels) + " |")
    return lines


def idle_table(results: dict[str, Any]) -> list[str]:
    lines = [
        "| namespaces | run | duration | apiserver requests by syncd | all apiserver requests in the window "
        "| writes | resourceVersions changed | OpenBao requests |",
        "|---:|---|---:|---|---:|---:|---:|---|",
    ]
    for entry in _sizes(results):
        for key, label in (("idle", "in-process `sync_all`"), ("idle_once", "`syncd once` process")):
            idle = entry.get(key)
            if not idle:
                continue
            api = idle["apiserver"]
            by = ", ".join(f"{k}: {v}" for k, v in api["by"].items() if _resource(k) in SYNCD_RESOURCES)
            lines.append(
                f"| {entry['n']:,} | {label} | {_s(idle['seconds'])} | **{api['syncd']}** ({by}) | {api['total']} "
                f"| {api['syncd_writes']} | {idle['resource_versions_changed']} of {idle['objects_checked']} "
                f"| **{idle['openbao_requests']}** ({', '.join(idle['openbao_by_path'])}) |"
            )
    return lines


def _resource(series: str) -> str:
    """`LIST namespaces` -> `namespaces` (series are "verb resource [subresource]")."""
    parts = series.split(" ")
    return parts[1] if len(parts) > 1 else ""


def daemon_table(results: dict[str, Any]) -> list[str]:
    lines = [
        "| namespaces | first full sync (start to /readyz) | peak RSS after it | new namespace p50 | p95 | max "
        "| syncs run meanwhile (median duration) | peak RSS at the end | others' CPU |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for entry in _sizes(results):
        daemon = entry.get("daemon") or {}
        latency = daemon.get("new_namespace") or {}
        first = (daemon.get("memory_after_first_sync_kib") or {}).get("VmHWM")
        last = (daemon.get("memory_after_new_namespaces_kib") or {}).get("VmHWM")
        missed = f" ({latency['missed']} missed)" if latency.get("missed") else ""
        syncs = daemon.get("syncs_during_new_namespaces")
        synced = f"{len(syncs)} ({_s(statistics.median(syncs))})" if syncs else "-"
        lines.append(
            f"| {entry['n']:,} | {_s(daemon.get('ready_seconds'))} | {_mib(first)} | {_s(latency.get('p50'))} "
            f"| {_s(latency.get('p95'))}{missed} | {_s(latency.get('max'))} | {synced} | {_mib(last)} "
            f"| {_load(entry, 'daemon')} |"
        )
    return lines


def _verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("met" if ok else "**missed**")


def targets_table(results: dict[str, Any]) -> list[str]:
    sizes = {e["n"]: e for e in _sizes(results)}
    at = sizes.get(1000) or {}
    rows: list[tuple[str, str, bool | None]] = []
    if "syncd" in at:
        syncd, floor = at["syncd"]["seconds"], at["floor"]["seconds"]
        kubectl, guessed = kubectl_figure(results, at)
        rows.append(("rollout at 1,000 within 1.5x the floor", _ratio(syncd, floor), syncd <= 1.5 * floor))
        label = _ratio(kubectl, syncd) + (" (extrapolated)" if guessed else "")
        rows.append(
            ("rollout at 1,000 at least 20x faster than kubectl", label, bool(kubectl) and kubectl >= 20 * syncd)
        )
    idle = at.get("idle")
    if idle:
        writes = idle["apiserver"]["syncd_writes"] + idle["resource_versions_changed"]
        rows.append(("idle sync at 1,000: zero writes", f"{writes} writes", writes == 0))
        rows.append(
            (
                "idle sync at 1,000: at most 3 apiserver requests",
                str(idle["apiserver"]["syncd"]),
                idle["apiserver"]["syncd"] <= 3,
            )
        )
        rows.append(
            (
                "idle sync at 1,000: one OpenBao request per credential",
                str(idle["openbao_requests"]),
                idle["openbao_requests"] == 1,
            )
        )
    p95s = {n: ((e.get("daemon") or {}).get("new_namespace") or {}).get("p95") for n, e in sizes.items()}
    known = {n: v for n, v in p95s.items() if v is not None}
    if known:
        text = ", ".join(f"{_s(v)} at {n:,}" for n, v in known.items())
        rows.append(("new namespace p95 under 2 s", text, all(v < 2 for v in known.values())))
    big = sizes.get(max(sizes)) if sizes else None
    rss = ((big or {}).get("daemon") or {}).get("memory_after_first_sync_kib") or {}
    if big and rss:
        rows.append((f"peak RSS under 150 MB at {big['n']:,}", _mib(rss.get("VmHWM")), rss["VmHWM"] < 150 * 1024))
    return ["| target | this run | |", "|---|---:|---|", *(f"| {t} | {v} | {_verdict(ok)} |" for t, v, ok in rows)]


def _mib(kib: int | None) -> str:
    return f"{kib / 1024:.0f} MB" if kib else "-"


def section(results: dict[str, Any]) -> str:
    m = results["machine"]
    parts = [
        f"Run of {results['date']}: `{results['command']}`, {results['wall_seconds'] / 60:.0f} min wall time. "
        f"Machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory_gib']} GiB, Linux {m['kernel']}. "
        f"Versions: kube-apiserver/etcd `{m['kube_apiserver']}`, {m['openbao']}, kubectl {m['kubectl']}, "
        f"Python {m['python']}, syncd {m['syncd']}. Load average at start: {results['loadavg_at_start']}.",
        "",
        "### Targets",
        "",
        *targets_table(results),
        "",
        "### Rollout after a rotation (seconds from the OpenBao write to the last Secret written)",
        "",
        *rollout_table(results),
        "",
        "![rollout time against namespaces](results/rollout.png)",
        "",
        "CPU seconds spent during each rollout: client side (syncd, kubectl or the floor client) / servers "
        "(kube-apiserver + etcd + OpenBao):",
        "",
        *cpu_table(results),
        "",
        "Write floor by concurrency (the fastest is the floor above):",
        "",
        *floor_table(results),
        "",
        "### Idle sync (nothing changed), counted at the servers",
        "",
        *idle_table(results),
        "",
        "### `syncd run`: memory and new-namespace latency",
        "",
        *daemon_table(results),
    ]
    return "\n".join(parts)


def chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib  # noqa: PLC0415 - optional dependency (the `bench` extra), only needed here

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    sizes = [e for e in _sizes(results) if "syncd" in e]
    figure, axes = plt.subplots(figsize=(7, 4.5))
    series = {
        "kubectl loop": [(e["n"], e["kubectl"].get("seconds")) for e in sizes],
        "syncd (in-process)": [(e["n"], e["syncd"]["seconds"]) for e in sizes],
        "syncd once (subprocess)": [(e["n"], e["syncd_once"]["seconds"]) for e in sizes],
        "floor (raw HTTP)": [(e["n"], e["floor"]["seconds"]) for e in sizes],
    }
    for label, points in series.items():
        known = [(n, s) for n, s in points if s is not None]
        if known:
            axes.plot([n for n, _ in known], [s for _, s in known], marker="o", label=label)
    guessed = [(e["n"], kubectl_figure(results, e)) for e in sizes]
    extrapolated = [(n, s) for n, (s, guess) in guessed if s is not None and guess]
    if extrapolated:
        last = next(((e["n"], e["kubectl"]["seconds"]) for e in reversed(sizes) if "seconds" in e["kubectl"]), None)
        points = ([last] if last else []) + extrapolated
        axes.plot(
            [n for n, _ in points],
            [s for _, s in points],
            "C0--",
            marker="o",
            mfc="none",
            label="kubectl (extrapolated)",
        )
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xticks([e["n"] for e in sizes], [f"{e['n']:,}" for e in sizes])
    axes.minorticks_off()
    axes.set_xlabel("namespaces")
    axes.set_ylabel("seconds to roll out a rotation")
    axes.set_title(f"Rollout after rotation ({results['machine']['nproc']} CPUs, local apiserver)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def render(results_path: Path, readme: Path, chart_path: Path) -> None:
    results = json.loads(results_path.read_text())
    text = readme.read_text()
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    readme.write_text(f"{head}{BEGIN}\n{section(results)}\n{END}{tail}")
    try:
        chart(results, chart_path)
    except ImportError:  # the figures are written already; only the picture needs the `bench` extra
        print(f"matplotlib is missing (pip install -e '.[bench]'): {chart_path} not drawn", file=sys.stderr)


if __name__ == "__main__":
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "results" / "results.json"
    render(source, Path(sys.argv[2]) if len(sys.argv) > 2 else HERE / "README.md", source.parent / "rollout.png")
