"""``python -m bench NAME [ARGS]``: run one benchmark (``python -m bench`` lists them)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

# name -> module with ``main(argv) -> int``; a new benchmark adds one line here.
BENCHMARKS: dict[str, str] = {
    "chunkstore": "bench.chunkstore",
    "api": "bench.api",
    "uploads": "bench.uploads",
    "node-ab": "bench.node_ab",
    "sync": "bench.sync",
    "push": "bench.push",
    "client": "bench.client",
    "s3": "bench.s3",
}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help"} or args[0] not in BENCHMARKS:
        if args and args[0] not in {"-h", "--help"}:
            print(f"unknown benchmark {args[0]!r}", file=sys.stderr)
        print("usage: python -m bench NAME [ARGS]   (NAME --help for its options)", file=sys.stderr)
        for name, module_name in BENCHMARKS.items():
            print(f"  {name:<12} {module_name}", file=sys.stderr)
        return 0 if not args or args[0] in {"-h", "--help"} else 2
    benchmark = importlib.import_module(BENCHMARKS[args[0]])
    result: int = benchmark.main(args[1:])
    return result


if __name__ == "__main__":
    sys.exit(main())
