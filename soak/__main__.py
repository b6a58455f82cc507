"""`python -m soak --duration 20m --seed N --out soak/results [--namespaces 300]`.

Exit code 0 when the run recorded no violation, 1 otherwise; the results JSON goes to --out and
`python -m soak.report` turns every results file there into soak/README.md and the timeline.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
from pathlib import Path

from soak.run import Soak, write_results
from soak.settings import Settings


def seconds(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600}
    return float(text[:-1]) * units[text[-1]] if text[-1] in units else float(text)


def parse(argv: list[str] | None = None) -> tuple[Settings, Path | None]:
    parser = argparse.ArgumentParser(prog="python -m soak", description=__doc__)
    parser.add_argument(
        "--duration", type=seconds, default=seconds("20m"), help="churn and faults, after setup (20m, 180s)"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("soak/results"))
    parser.add_argument("--namespaces", type=int, default=300)
    parser.add_argument("--fault-seconds", type=float, nargs=2, default=(12.0, 25.0), metavar=("MIN", "MAX"))
    parser.add_argument("--fault-gap", type=float, nargs=2, default=(8.0, 20.0), metavar=("MIN", "MAX"))
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="servers' and replicas' state and logs (default: OUT/state-seedN, replaced each run)",
    )
    parser.add_argument("--sabotage", action="store_true", help="make bad writes halfway: the run must report them")
    args = parser.parse_args(argv)
    settings = Settings(
        duration=args.duration,
        seed=args.seed,
        out=args.out,
        namespaces=args.namespaces,
        fault_seconds=tuple(args.fault_seconds),
        fault_gap=tuple(args.fault_gap),
        sabotage=args.sabotage,
    )
    return settings, args.state_dir


def _interrupted(*_: object) -> None:
    raise KeyboardInterrupt  # SIGTERM: unwind, so that `teardown` stops every server this run started


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _interrupted)
    settings, state_dir = parse(argv)
    state = (state_dir or settings.out / f"state-seed{settings.seed}").resolve()
    shutil.rmtree(state, ignore_errors=True)  # kept after the run: the replicas' and servers' logs
    soak = Soak(settings, state)
    try:
        soak.setup()
        print(f"[soak] set up in {soak.setup_seconds:.0f}s; first rollout {soak.initial_convergence}", flush=True)
        soak.run()
        results = soak.finish()
    finally:
        soak.teardown()
    path = write_results(results, settings.out)
    print(f"[soak] results: {path}; violations: {len(results['violations'])}")
    for violation in results["violations"]:
        print(f"[soak]   {violation['check']}: {violation['where']}: {violation['detail']}")
    return 0 if not results["violations"] else 1


if __name__ == "__main__":
    sys.exit(main())
