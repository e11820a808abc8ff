"""One learned MPNN step at scale: native executor against the torch module, same weights.

    python benchmarks/learned_step.py [--nodes 1e6] [--degree 10] [--hidden 128] [--threads 2]

Builds a CLRS-style learned MPNN for BFS (hidden 128, max aggregation, one message MLP
layer pair, hint feedback off so that a step is the processor alone) with random weights,
an Erdős–Rényi graph with the given mean degree, and measures in separate processes (so each
peak RSS is its own):

* native: ``engine.execute(..., backend="native", steps=k)`` for k = 1 and 3; one step is
  the difference over 2 (graph inputs, the initial state and decoding cancel out);
* torch module: ``GNNModule.step`` under ``torch.no_grad()`` on the same graph (CPU, the
  same thread count), median of the repeats after one warm-up;
* the floor of the step's products: a product of its node-side shape (n x (hidden + 3) by
  (hidden + 3) x hidden) by NumPy's ``matmul`` (BLAS) and by the native blocked product, with
  the achieved GFLOP/s of each.

The step's GEMM floor is the arithmetic of its products (per node: the message MLP's source and
destination parts and the update; per message: the edge term and the dense message layers;
counted from the model's weight shapes) at NumPy's measured rate; the report gives the native
step over that floor (issue target: at most 1.5) and the torch module over the native step
(target: at least 5), with ``lscpu``'s model and ISA flags.

Peak RSS is ``ru_maxrss`` of each process (graph and model included; the graph alone is
reported too). The torch run is refused beforehand when its estimated peak (three m x k
message tensors at once) does not fit in the available memory; the report then says so.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

try:  # imported with the benchmarks package (asv's discovery)
    from .batch_eval import cpu_description
except ImportError:  # run as a script: this script's folder
    from batch_eval import cpu_description


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _setup(n, degree, hidden):
    import engine
    from engine.graph import generators
    from engine.algorithms.specs import learned_spec
    from engine.model.factory import random_model

    spec = learned_spec("bfs", "mpnn", hidden, hint_mode="decoded_only")
    model = random_model(spec, seed=0, scale=1.0)
    g = generators.erdos_renyi(n, degree, weighted=True, seed=0)
    return engine, model, g


def step_flops(model, nodes: int, messages: int) -> float:
    """Floating-point operations of one processor step's products (a multiply and an add per
    weight and row): per node the node-side products (``.src``, ``.dst``, ``.node``, ``.agg``
    of every layer's message, update and gate), per message the edge term and the dense
    message layers."""
    total = 0
    for name, w in model.weights.items():
        if not name.startswith("layers.") or w.ndim != 2:
            continue
        leaf = name.rsplit(".", 1)[1]
        if leaf in ("src", "dst", "node", "agg"):
            total += nodes * w.size
        elif leaf == "edge" or (".message." in name and leaf == "weight"):
            total += messages * w.size
    return 2.0 * total


def worker(kind, n, degree, hidden, threads, repeat):
    import numpy as np

    engine, model, g = _setup(n, degree, hidden)
    graph_rss = _rss_mb()
    out = {"kind": kind, "nodes": n, "edges": int(g.num_edges), "graph_rss_mb": graph_rss,
           "step_flops": step_flops(model, n, int(g.num_edges) + n)}  # messages: the in-edges and self
    if kind == "native":
        times = {}
        for k in (1, 3):
            samples = []
            for _ in range(repeat):
                t = time.perf_counter()
                engine.execute(model, g, 0, backend="native", steps=k, threads=threads)
                samples.append(time.perf_counter() - t)
            times[k] = float(np.median(samples))
        out["step_seconds"] = (times[3] - times[1]) / 2
    else:
        import torch

        from engine.learn import GNNModule, GraphBatch

        torch.set_num_threads(threads)
        module = GNNModule.from_model(model)
        batch = GraphBatch(g, 0, model.spec)
        with torch.no_grad():
            h = module.initial_state(batch)
            module.step(batch, h)  # warm-up
            samples = []
            for _ in range(repeat):
                t = time.perf_counter()
                module.step(batch, h)
                samples.append(time.perf_counter() - t)
        out["step_seconds"] = float(np.median(samples))
    out["peak_rss_mb"] = _rss_mb()
    print(json.dumps(out))


def gemm_worker(n, hidden, threads, repeat):
    """The floor of the step's products: the same shape (n x (hidden + 3)) by (hidden + 3) x
    hidden, as NumPy's ``matmul`` (BLAS, fused multiply-adds) and the native blocked product
    (``engine._native.project``: unfused, inputs ascending, the kernels' order) in one process."""
    import numpy as np

    from engine import _native

    rng = np.random.default_rng(0)
    A = rng.random((n, hidden + 3), dtype=np.float32)
    W = rng.random((hidden + 3, hidden), dtype=np.float32)
    Y = np.zeros((n, hidden), np.float32)
    _native.set_num_threads(threads)
    flops = 2.0 * n * (hidden + 3) * hidden
    out = {"kind": "gemm", "shape": [n, hidden + 3, hidden]}
    for name, fn in (("numpy_matmul", lambda: np.matmul(A, W, out=Y)), ("native_project", lambda: _native.project(A, W, Y))):
        fn()
        samples = []
        for _ in range(repeat):
            t = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - t)
        out[name] = {"seconds": float(np.median(samples)), "gflops": flops / float(np.median(samples)) / 1e9}
    print(json.dumps(out))


def _available_bytes() -> int:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", type=float, default=1e6)
    p.add_argument("--degree", type=float, default=10.0)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--json", default=None)
    p.add_argument("--worker", choices=["native", "torch", "gemm"], default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    n = int(args.nodes)
    if args.worker == "gemm":
        gemm_worker(n, args.hidden, args.threads, args.repeat)
        return 0
    if args.worker:
        worker(args.worker, n, args.degree, args.hidden, args.threads, args.repeat)
        return 0
    results = {"cpu": cpu_description(), "threads": args.threads}
    print(f"cpu: {results['cpu']['model']} ({', '.join(results['cpu']['isa'])}); {args.threads} thread(s)")
    messages = int(n * args.degree) + n
    torch_estimate = 3 * messages * args.hidden * 4
    for kind in ("native", "torch"):
        if kind == "torch" and torch_estimate > 0.9 * _available_bytes():
            results[kind] = {"refused": f"estimated peak {torch_estimate / 2**30:.1f} GiB > available "
                                        f"{_available_bytes() / 2**30:.1f} GiB"}
            print(f"torch module: not run ({results[kind]['refused']})")
            continue
        cmd = [sys.executable, __file__, "--worker", kind, "--nodes", str(n), "--degree", str(args.degree),
               "--hidden", str(args.hidden), "--threads", str(args.threads), "--repeat", str(args.repeat)]
        env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            results[kind] = {"failed": proc.stderr.strip().splitlines()[-1:] or [f"exit {proc.returncode}"]}
            print(f"{kind}: failed ({results[kind]['failed']})")
            continue
        results[kind] = json.loads(proc.stdout.strip().splitlines()[-1])
        r = results[kind]
        print(f"{kind:<7s} step {r['step_seconds']:.3f} s   peak RSS {r['peak_rss_mb']:.0f} MB "
              f"(graph and model alone {r['graph_rss_mb']:.0f} MB)")
    cmd = [sys.executable, __file__, "--worker", "gemm", "--nodes", str(n), "--hidden", str(args.hidden),
           "--threads", str(args.threads), "--repeat", str(args.repeat)]
    proc = subprocess.run(cmd, capture_output=True, text=True,
                          env=dict(os.environ, OMP_NUM_THREADS=str(args.threads), OPENBLAS_NUM_THREADS=str(args.threads)))
    if proc.returncode == 0:
        g = results["gemm"] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"product {g['shape'][0]} x {g['shape'][1]} by {g['shape'][1]} x {g['shape'][2]}: NumPy matmul "
              f"{g['numpy_matmul']['seconds']:.3f} s ({g['numpy_matmul']['gflops']:.0f} GFLOP/s), native "
              f"{g['native_project']['seconds']:.3f} s ({g['native_project']['gflops']:.0f} GFLOP/s)")
    if "step_seconds" in results.get("native", {}) and "step_seconds" in results.get("torch", {}):
        nat, tor = results["native"], results["torch"]
        results["speedup"] = tor["step_seconds"] / nat["step_seconds"]
        results["memory_ratio"] = nat["peak_rss_mb"] / tor["peak_rss_mb"]
        print(f"torch module / native step time: {results['speedup']:.1f}x (target >= 5); "
              f"native / torch peak RSS: {results['memory_ratio']:.2f}")
    if "step_seconds" in results.get("native", {}) and "gemm" in results:
        nat = results["native"]
        floor = nat["step_flops"] / (results["gemm"]["numpy_matmul"]["gflops"] * 1e9)
        results["gemm_floor_seconds"] = floor
        results["over_gemm_floor"] = nat["step_seconds"] / floor
        print(f"step's products {nat['step_flops'] / 1e9:.1f} GFLOP: at NumPy's rate {floor:.3f} s; native step / "
              f"that floor: {results['over_gemm_floor']:.2f} (target <= 1.5)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
