"""``python -m bench NAME [ARGS]``: run one benchmark (``python -m bench`` lists them);
``python -m bench all [--quick] [NAME ...]``: run several in order, then one summary of the
issues' targets met or missed."""

from __future__ import annotations

import importlib
import sys
import time
from collections.abc import Sequence

from bench.common import GOALS

# name -> module with ``main(argv) -> int``; a new benchmark adds one line here.
BENCHMARKS: dict[str, str] = {
    "chunkstore": "bench.chunkstore",
    "api": "bench.api",
    "uploads": "bench.uploads",
    "photos": "bench.photos",
    "downloads": "bench.downloads",
    "node-ab": "bench.node_ab",
    "sync": "bench.sync",
    "push": "bench.push",
    "client": "bench.client",
    "s3": "bench.s3",
}
# What ``all`` runs without names: issue 9's set (``make bench`` / ``make bench-quick``).
ALL = ("chunkstore", "api", "uploads", "photos", "downloads")
ALL_QUICK = ("uploads", "photos", "downloads")
HAS_QUICK = {"uploads", "photos", "downloads", "sync", "push", "client"}


def run_one(name: str, argv: Sequence[str]) -> int:
    benchmark = importlib.import_module(BENCHMARKS[name])
    result: int = benchmark.main(list(argv))
    return result


def run_all(args: Sequence[str]) -> int:
    quick = "--quick" in args
    names = [a for a in args if a != "--quick"] or list(ALL_QUICK if quick else ALL)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}", file=sys.stderr)
        return 2
    outcomes: list[tuple[str, str, float]] = []
    started = time.monotonic()
    for name in names:
        argv = ["--quick"] if quick and name in HAS_QUICK else []
        print(f"\n===== python -m bench {' '.join([name, *argv])} =====\n", flush=True)
        t0 = time.monotonic()
        try:
            code = run_one(name, argv)
            outcome = "ok" if code == 0 else f"exit {code}"
        except KeyboardInterrupt:
            outcomes.append((name, "interrupted", time.monotonic() - t0))
            break
        except SystemExit as exc:  # a benchmark's argument parser refusing
            outcome = f"exit {exc.code}"
        except Exception as exc:  # one benchmark failing does not stop the others
            outcome = f"failed: {exc!r}"
        outcomes.append((name, outcome, time.monotonic() - t0))
    total = time.monotonic() - started
    print("\n===== summary =====\n")
    for name, outcome, seconds in outcomes:
        print(f"- {name}: {outcome} ({seconds:.0f} s)")
    print(f"total {total:.0f} s ({total / 60:.1f} min){' with --quick' if quick else ''}")
    if GOALS:
        met = sum(1 for g in GOALS if g.met)
        missed = sum(1 for g in GOALS if g.met is False)
        print(f"\nTargets (issue 9), this run: {met} met, {missed} missed")
        for benchmark in dict.fromkeys(g.benchmark for g in GOALS):
            print(f"\n{benchmark}:")
            for g in GOALS:
                if g.benchmark == benchmark:
                    print(g.line())
    return 0 if all(outcome == "ok" for _, outcome, _ in outcomes) else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "all":
        return run_all(args[1:])
    if not args or args[0] in {"-h", "--help"} or args[0] not in BENCHMARKS:
        if args and args[0] not in {"-h", "--help"}:
            print(f"unknown benchmark {args[0]!r}", file=sys.stderr)
        print("usage: python -m bench NAME [ARGS]   (NAME --help for its options)", file=sys.stderr)
        print("       python -m bench all [--quick] [NAME ...]   (default: " + " ".join(ALL) + ")", file=sys.stderr)
        for name, module_name in BENCHMARKS.items():
            print(f"  {name:<12} {module_name}", file=sys.stderr)
        return 0 if not args or args[0] in {"-h", "--help"} else 2
    return run_one(args[0], args[1:])


if __name__ == "__main__":
    sys.exit(main())
