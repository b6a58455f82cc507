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


def _floor(entry: dict[str, Any], key: str) -> str:
    """`1.23 s (x32)`, or `-` where the run had no such floor (results before issue 25: no Go floor)."""
    floor = entry.get(key) or {}
    if floor.get("seconds") is None:
        return "-"
    return f"{_s(floor['seconds'])} (x{floor['best_concurrency']})"


def _seconds(entry: dict[str, Any], key: str) -> float | None:
    value = (entry.get(key) or {}).get("seconds")
    return float(value) if value is not None else None


def rollout_table(results: dict[str, Any]) -> list[str]:
    lines = [
        "| namespaces | syncd (in-process `sync_all`, best of runs) | `syncd once` (subprocess) "
        "| Python floor (best concurrency) | Go floor (best concurrency) | kubectl loop "
        "| syncd / Python floor | syncd / Go floor | kubectl / syncd "
        "| others' CPU (syncd / Python floor / Go floor / kubectl) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    basis = kubectl_per_namespace(results)
    for entry in _sizes(results):
        if "syncd" not in entry:
            continue
        syncd = entry["syncd"]["seconds"]
        kubectl, extrapolated = kubectl_figure(results, entry)
        kubectl_text, ratio = _s(kubectl), _ratio(kubectl, syncd)
        if extrapolated and basis:
            kubectl_text = f"not run; ~{_s(kubectl)} extrapolated from N={basis[0]:,}"
            ratio = f"~{ratio} (extrapolated)"
        runs = ", ".join(_s(r["seconds"]) for r in entry["syncd"]["runs"])
        lines.append(
            f"| {entry['n']:,} | {_s(syncd)} ({runs}) | {_s(entry['syncd_once']['seconds'])} "
            f"| {_floor(entry, 'floor')} | {_floor(entry, 'go_floor')} | {kubectl_text} "
            f"| {_ratio(syncd, _seconds(entry, 'floor'))} | {_ratio(syncd, _seconds(entry, 'go_floor'))} "
            f"| {ratio} | {_load(entry, 'syncd', 'floor', 'go_floor', 'kubectl')} |"
        )
    return lines


def _best_run(entry: dict[str, Any]) -> dict[str, Any]:
    return dict(min(entry["syncd"]["runs"], key=lambda r: r["seconds"]))


def cpu_table(results: dict[str, Any]) -> list[str]:
    """CPU seconds are steadier than wall time on a shared machine; the floor row covers all its runs."""
    lines = [
        "| namespaces | syncd: client / servers | `syncd once`: client / servers "
        "| Python floor, all concurrencies: client / servers | Go floor, all concurrencies: client / servers "
        "| kubectl loop: client / servers |",
        "|---:|---:|---:|---:|---:|---:|",
    ]

    def pair(phase: dict[str, Any] | None) -> str:
        cpu = (phase or {}).get("cpu") or {}
        if "client_cpu_seconds" not in cpu:
            return "-"
        controllers = f" / {cpu['controller_cpu_seconds']:.2f}" if "controller_cpu_seconds" in cpu else ""
        return f"{cpu['client_cpu_seconds']:.2f} / {cpu['server_cpu_seconds']:.2f}{controllers}"

    for entry in _sizes(results):
        if "syncd" in entry:
            lines.append(
                f"| {entry['n']:,} | {pair(_best_run(entry))} | {pair(entry['syncd_once'])} "
                f"| {pair(entry['floor'])} | {pair(entry.get('go_floor'))} | {pair(entry.get('kubectl'))} |"
            )
    return lines


def floor_table(results: dict[str, Any]) -> list[str]:
    """Each floor's time at each concurrency it ran at, one row per size and floor."""
    keys = {"floor": "Python", "go_floor": "Go", "first_floor": "Python, 2N", "first_go_floor": "Go, 2N"}
    levels = sorted({int(c) for e in _sizes(results) for k in keys if k in e for c in e[k]["by_concurrency"]})
    lines = [
        "| namespaces | floor | " + " | ".join(f"x{c}" for c in levels) + " |",
        "|---:|---|" + "---:|" * len(levels),
    ]
    for entry in _sizes(results):
        for key, label in keys.items():
            if key in entry:
                runs = entry[key]["by_concurrency"]
                cells = " | ".join(_s(runs.get(str(c))) for c in levels)
                lines.append(f"| {entry['n']:,} | {label} | {cells} |")
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


def _rollout_rows(sizes: dict[int, dict[str, Any]], results: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    rows: list[tuple[str, str, bool | None]] = []
    at = sizes.get(1000) or {}
    if "syncd" in at:
        syncd = at["syncd"]["seconds"]
        kubectl, guessed = kubectl_figure(results, at)
        rows += _against_floors(at, "syncd", "rollout at 1,000 within 1.5x", 1.5)
        label = _ratio(kubectl, syncd) + (" (extrapolated)" if guessed else "")
        verdict = None if not kubectl else kubectl >= 20 * syncd  # not run (--kubectl-max below 1,000): no verdict
        rows.append(("rollout at 1,000 at least 20x faster than kubectl", label, verdict))
    big = sizes.get(10000) or {}
    if "syncd" in big:
        rows += _against_floors(big, "syncd", "rollout at 10,000 within 1.3x", 1.3)
    for n in (1000, 5000):
        entry = sizes.get(n) or {}
        if "first_syncd" in entry:
            text = f"first rollout (N Secrets + N ServiceAccounts) at {n:,} within 1.5x"
            rows += _against_floors(entry, "first_syncd", text, 1.5, prefix="first_", of="the floor of 2N writes")
    return rows


def _against_floors(
    entry: dict[str, Any], syncd_key: str, text: str, limit: float, *, prefix: str = "", of: str = "the floor"
) -> list[tuple[str, str, bool | None]]:
    """One target row per floor the run measured (Python; Go since issue 25)."""
    syncd = float(entry[syncd_key]["seconds"])
    rows: list[tuple[str, str, bool | None]] = []
    for key, name in ((f"{prefix}floor", "Python"), (f"{prefix}go_floor", "Go")):
        floor = _seconds(entry, key)
        if floor:
            rows.append((f"{text} {of} ({name})", _ratio(syncd, floor), syncd <= limit * floor))
    return rows


def _idle_rows(sizes: dict[int, dict[str, Any]]) -> list[tuple[str, str, bool | None]]:
    rows: list[tuple[str, str, bool | None]] = []
    idle = (sizes.get(1000) or {}).get("idle")
    if idle:
        writes = idle["apiserver"]["syncd_writes"] + idle["resource_versions_changed"]
        rows.append(("idle sync at 1,000: zero writes", f"{writes} writes", writes == 0))
    once = {n: e["idle_once"]["apiserver"]["syncd"] for n, e in sizes.items() if "idle_once" in e and n <= 10000}
    if once:
        text = ", ".join(f"{v} at {n:,}" for n, v in once.items())
        rows.append(("idle `syncd once`: at most 3 apiserver requests, up to 10,000", text, max(once.values()) <= 3))
    for n in (1000, 10000):
        daemon = ((sizes.get(n) or {}).get("daemon") or {}).get("idle_daemon")
        if daemon:
            requests, syncs = daemon["syncd_requests_besides_watches"], int(daemon["syncs"])
            text = f"{requests} in {syncs} syncs; OpenBao {daemon['openbao_requests']}"
            ok = requests == 0 and syncs >= 2 and daemon["openbao_requests"] == syncs
            rows.append((f"idle `syncd run` at {n:,}: 0 apiserver requests, 1 OpenBao request per sync", text, ok))
    return rows


def _daemon_rows(sizes: dict[int, dict[str, Any]]) -> list[tuple[str, str, bool | None]]:
    rows: list[tuple[str, str, bool | None]] = []
    p95s = {n: ((e.get("daemon") or {}).get("new_namespace") or {}).get("p95") for n, e in sizes.items()}
    known = {n: v for n, v in p95s.items() if v is not None}
    if known:
        text = ", ".join(f"{_s(v)} at {n:,}" for n, v in known.items())
        rows.append(("new namespace p95 under 2 s", text, all(v < 2 for v in known.values())))
    if 50000 in known:
        rows.append(("new namespace p95 under 1 s at 50,000", _s(known[50000]), known[50000] < 1))
    for n, limit in ((10000, 120), (50000, 400)):
        peak = _peak_kib(sizes.get(n) or {})
        if peak:
            rows.append((f"peak RSS of `syncd run` under {limit} MB at {n:,}", _mib(peak), peak < limit * 1024))
    return rows


def _peak_kib(entry: dict[str, Any]) -> int | None:
    """The daemon's VmHWM at the last reading: its peak over the whole phase."""
    daemon = entry.get("daemon") or {}
    for key in ("memory_at_the_end_kib", "memory_after_new_namespaces_kib", "memory_after_first_sync_kib"):
        found = (daemon.get(key) or {}).get("VmHWM")
        if found:
            return int(found)
    return None


def targets_table(results: dict[str, Any]) -> list[str]:
    sizes = {e["n"]: e for e in _sizes(results)}
    rows = _rollout_rows(sizes, results) + _idle_rows(sizes) + _daemon_rows(sizes)
    return ["| target | this run | |", "|---|---:|---|", *(f"| {t} | {v} | {_verdict(ok)} |" for t, v, ok in rows)]


def _of(timed: dict[str, Any]) -> str:
    """The other runs behind a best-of figure (results before 2026-12-02 timed syncd once)."""
    runs = timed.get("runs") or []
    return f" (best of {', '.join(_s(run['seconds']) for run in runs)})" if len(runs) > 1 else ""


def first_rollout_table(results: dict[str, Any]) -> list[str]:
    lines = [
        "| namespaces | syncd (in-process `sync_all`, best run) | Python floor: 2N writes (best concurrency) "
        "| Go floor: 2N writes (best concurrency) | syncd / Python floor | syncd / Go floor "
        "| not rolled out (syncd / Python / Go) | CPU client / servers (syncd; Python floor; Go floor) "
        "| others' CPU (syncd / Python floor / Go floor) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def cpu(phase: dict[str, Any] | None) -> str:
        found = (phase or {}).get("cpu") or {}
        return f"{found['client_cpu_seconds']:.2f} / {found['server_cpu_seconds']:.2f}" if found else "-"

    for entry in _sizes(results):
        if "first_syncd" not in entry:
            continue
        syncd, go = entry["first_syncd"], entry.get("first_go_floor") or {}
        seconds = float(syncd["seconds"])
        lines.append(
            f"| {entry['n']:,} | {_s(seconds)}{_of(syncd)} | {_floor(entry, 'first_floor')} "
            f"| {_floor(entry, 'first_go_floor')} | {_ratio(seconds, _seconds(entry, 'first_floor'))} "
            f"| {_ratio(seconds, _seconds(entry, 'first_go_floor'))} "
            f"| {syncd['wrong']} / {entry['first_floor']['wrong']} / {go.get('wrong', '-')} "
            f"| {cpu(syncd)}; {cpu(entry['first_floor'])}; {cpu(go)} "
            f"| {_load(entry, 'first_syncd', 'first_floor', 'first_go_floor')} |"
        )
    return lines


def idle_daemon_table(results: dict[str, Any]) -> list[str]:
    lines = [
        "| namespaces | window | scheduled syncs in it | apiserver requests by syncd, besides its watches "
        "| its watches' WATCH requests ending in the window | all apiserver requests | OpenBao requests "
        "| daemon CPU per minute |",
        "|---:|---:|---:|---:|---:|---|---|---:|",
    ]
    for entry in _sizes(results):
        idle = (entry.get("daemon") or {}).get("idle_daemon")
        if not idle:
            continue
        api = idle["apiserver"]
        everything = ", ".join(f"{k}: {v}" for k, v in api["by"].items()) or "none"
        lines.append(
            f"| {entry['n']:,} | {idle['seconds']:.0f} s | {int(idle['syncs'])}{_relists(idle)} "
            f"| **{idle['syncd_requests_besides_watches']}** | {api.get('syncd_watches', 0)} | {api['total']} "
            f"({everything}) | **{idle['openbao_requests']}** | {_cpu_per_minute(idle)} |"
        )
    return lines


def _relists(idle: dict[str, Any]) -> str:
    """Watch relists in the window: each triggers a whole-spec sync from cached credentials."""
    return f" ({idle['watch_relists']} after watch relists)" if idle.get("watch_relists") else ""


def _cpu_per_minute(idle: dict[str, Any]) -> str:
    """CPU seconds per minute and the share of one core (results before issue 25 lack it)."""
    per_minute = idle.get("daemon_cpu_seconds_per_minute")
    return "-" if per_minute is None else f"{per_minute:.2f} s ({per_minute / 60:.1%} of a core)"


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
        "(kube-apiserver + etcd + OpenBao) / controllers (kube-controller-manager + kube-scheduler; "
        "runs since issue 25):",
        "",
        *cpu_table(results),
        "",
        "Write floors by concurrency (the fastest of each is the floor above; Python: threads, Go: goroutines):",
        "",
        *floor_table(results),
        "",
        "### Idle sync (nothing changed), counted at the servers",
        "",
        *idle_table(results),
        "",
        "### First rollout with ServiceAccounts (N Secrets created, N `default` ServiceAccounts appended to)",
        "",
        *first_rollout_table(results),
        "",
        "### Idle `syncd run`: scheduled syncs in which nothing changed, counted at the servers",
        "",
        *idle_daemon_table(results),
        "",
        "### `syncd run`: memory and new-namespace latency",
        "",
        *daemon_table(results),
        "",
        "![peak RSS of syncd run against namespaces](results/rss.png)",
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
        "Python floor (http.client)": [(e["n"], e["floor"]["seconds"]) for e in sizes],
        "Go floor (client-go, HTTP/2)": [(e["n"], (e.get("go_floor") or {}).get("seconds")) for e in sizes],
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


def rss_chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib  # noqa: PLC0415 - optional dependency (the `bench` extra), only needed here

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    points = [(e["n"], _peak_kib(e)) for e in _sizes(results)]
    known = [(n, kib / 1024) for n, kib in points if kib]
    figure, axes = plt.subplots(figsize=(7, 4.5))
    axes.plot([n for n, _ in known], [mb for _, mb in known], marker="o", label="syncd run: peak RSS (VmHWM)")
    targets = [(n, mb) for n, mb in ((10000, 120), (50000, 400)) if any(k == n for k, _ in known)]
    if targets:
        axes.plot([n for n, _ in targets], [mb for _, mb in targets], "rx", markersize=10, label="target (under)")
    axes.set_xscale("log")
    axes.set_xticks([n for n, _ in known], [f"{n:,}" for n, _ in known])
    axes.minorticks_off()
    axes.set_xlabel("namespaces (each with a ServiceAccount and an unrelated Secret)")
    axes.set_ylabel("MB")
    axes.set_ylim(bottom=0)
    axes.set_title("Peak RSS of `syncd run` after its first sync, new namespaces and idle syncs")
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
        rss_chart(results, chart_path.with_name("rss.png"))
    except ImportError:  # the figures are written already; only the picture needs the `bench` extra
        print(f"matplotlib is missing (pip install -e '.[bench]'): {chart_path} not drawn", file=sys.stderr)


if __name__ == "__main__":
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "results" / "results.json"
    render(source, Path(sys.argv[2]) if len(sys.argv) > 2 else HERE / "README.md", source.parent / "rollout.png")
