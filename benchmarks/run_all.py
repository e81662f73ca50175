"""Run every benchmark in turn (each prints its own table and writes benchmarks/results/*.json).

    .venv/bin/python benchmarks/run_all.py            # ~8 min on the 2-core machine
    .venv/bin/python benchmarks/run_all.py --quick    # ~3 min
    .venv/bin/python benchmarks/run_all.py --only fanout roundtrip

Other options (``--reps``, ``--nice``) are passed to every script.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = ["validation", "memory", "fanout", "roundtrip", "redis", "supervisor", "wallboard"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--reps", type=int)
    parser.add_argument("--nice", type=int)
    parser.add_argument("--only", nargs="+", choices=SCRIPTS)
    args = parser.parse_args()
    extra = (["--quick"] if args.quick else []) + (["--reps", str(args.reps)] if args.reps else []) + (
        ["--nice", str(args.nice)] if args.nice is not None else [])
    failed = []
    start = time.monotonic()
    for name in args.only or SCRIPTS:
        print(f"\n===== bench_{name}.py {' '.join(extra)}", flush=True)
        t0 = time.monotonic()
        code = subprocess.call([sys.executable, str(HERE / f"bench_{name}.py"), *extra])
        print(f"===== bench_{name}.py: exit {code} after {time.monotonic() - t0:.0f} s", flush=True)
        if code:
            failed.append(name)
    print(f"\nall done in {time.monotonic() - start:.0f} s" + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
