"""Wall time of one evaluation sweep in this process and on a local Dask cluster, in one run.

    python benchmarks/sweep_wall.py [--models compiled:bfs,compiled:bellman_ford] \
        [--sizes 16,256,1e3,1e4,1e5] [--seeds 0-2] [--cluster local:2]

Both runs evaluate the same cells (models x sizes x seeds, ER graphs of mean degree 10) into
fresh directories and must give the same table (wall times apart); prints both wall times,
their ratio and ``lscpu``'s model name.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time


def main(argv=None) -> int:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from engine._cli import parse_counts, parse_seeds
    from engine.analysis.generalization import evaluate

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="compiled:bfs,compiled:bellman_ford")
    p.add_argument("--sizes", type=parse_counts, default=[16, 256, 1000, 10_000, 100_000])
    p.add_argument("--seeds", type=parse_seeds, default=[0, 1, 2])
    p.add_argument("--cluster", default="local:2")
    args = p.parse_args(argv)
    models = args.models.split(",")
    times, tables = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for where in (None, args.cluster):
            t = time.perf_counter()
            rows = evaluate(models, args.sizes, seeds=args.seeds, out=os.path.join(tmp, str(where)), cluster=where)
            times[where] = time.perf_counter() - t
            tables[where] = [{k: v for k, v in r.items() if k != "seconds"} for r in rows]
    assert tables[None] == tables[args.cluster], "the sweep's table differs from the in-process one"
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next((line.split(":", 1)[1].strip() for line in cpu.splitlines() if line.startswith("Model name")), "?")
    cells = len(tables[None])
    print(f"{cells} cells ({len(models)} models x {len(args.sizes)} sizes x {len(args.seeds)} seeds), CPU: {model}, "
          f"{os.cpu_count()} cores")
    print(f"in-process:   {times[None]:8.1f} s")
    print(f"{args.cluster}: {times[args.cluster]:8.1f} s  ({times[None] / times[args.cluster]:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
