"""A CLRS-size test set evaluated at once: native ``execute_batch`` against the torch module.

    python benchmarks/batch_eval.py [--graphs 10000] [--nodes 64] [--hidden 128] [--threads 1]
                                    [--loop 500] [--json out.json]

For a learned MPNN and a learned GATv2 (BFS specs, hidden 128, hints decoded and fed back as
CLRS's ``encoded_decoded``, the module's random initialisation), ``--graphs`` Erdős–Rényi graphs of ``--nodes``
nodes (mean degree drawn from 2 to 12 per graph), each run for its own BFS reference length
from its own source, and decoded to the ``pi`` output:

* native: one ``engine.execute_batch`` call (disjoint unions grouped by step count; the
  union's construction counts);
* torch: the module batched the same way (one ``GraphBatch`` of every graph, sorted by step
  count, one ``rollout(..., graph_steps=)`` under ``torch.no_grad()``, the ``pi`` decode);
  its batch construction is timed apart and in the total;
* one ``engine.execute`` per graph for the first ``--loop`` graphs (the per-call cost that
  batching removes), scaled to the whole set.

Every timing is the median of ``--repeat`` runs after a warm-up, on the same threads
(``torch.set_num_threads`` and the native backend's threads). The two pointer outputs are
compared graph by graph (random weights make near ties, so a few may differ in float
rounding order). Prints ``lscpu``'s model and ISA flags with the figures.
"""
from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import time

import numpy as np


def cpu_description() -> dict:
    """``lscpu``'s model name and the vector ISA flags that matter here."""
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return {"model": "unknown", "isa": []}
    info = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    flags = info.get("Flags", "").split()
    isa = [f for f in ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_bf16", "amx_tile") if f in flags]
    return {"model": info.get("Model name", "unknown").strip(), "isa": isa}


def median_time(fn, repeat: int):
    result = fn()  # warm-up
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times)), result


def test_set(count: int, nodes: int, seed: int):
    """``count`` graphs, their sources and BFS reference lengths (CLRS's trace length - 1)."""
    import engine
    from engine.graph import generators

    rng = np.random.default_rng(seed)
    graphs, sources, steps = [], [], []
    for i in range(count):
        g = generators.erdos_renyi(nodes, float(rng.uniform(2, 12)), seed=int(rng.integers(2**31)))
        s = int(rng.integers(nodes))
        ref = engine.reference("bfs", g, s)
        graphs.append(g)
        sources.append(s)
        steps.append(max(len(ref.hints["pi_h"]) - 1, 1))
    return graphs, sources, steps


def learned_model(processor: str, hidden: int):
    """Learned BFS (hints fed back, CLRS's ``encoded_decoded``) with the module's own
    initialisation: GATv2's weights have a structure ``random_model`` lacks."""
    from engine.algorithms.specs import learned_spec
    from engine.learn import GNNModule

    return GNNModule.initialised(learned_spec("bfs", processor, hidden, hint_mode="encoded_decoded"),
                                 seed=0).to_model()


def by_steps_descending(graphs, sources, steps):
    """The test set sorted by step count, longest first, as the torch rollout wants it:
    ``(order, graphs, sources, steps)``."""
    order = np.argsort(-np.asarray(steps), kind="stable")
    return order, [graphs[i] for i in order], [sources[i] for i in order], [steps[i] for i in order]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--graphs", type=int, default=10_000)
    p.add_argument("--nodes", type=int, default=64)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--loop", type=int, default=500, help="graphs run one execute call each (0: skip)")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)

    import torch

    import engine
    from engine.learn import GNNModule, GraphBatch

    torch.set_num_threads(args.threads)
    cpu = cpu_description()
    print(f"CPU: {cpu['model']} ({' '.join(cpu['isa'])}); threads {args.threads}")
    graphs, sources, steps = test_set(args.graphs, args.nodes, seed=0)
    order, sorted_graphs, sorted_sources, sorted_steps = by_steps_descending(graphs, sources, steps)
    print(f"{args.graphs} graphs of {args.nodes} nodes, {sum(g.num_edges for g in graphs)} edges, "
          f"steps {min(steps)}-{max(steps)} (mean {np.mean(steps):.2f})")
    rows = []
    for processor in ("mpnn", "gatv2"):
        model = learned_model(processor, args.hidden)
        native_s, native = median_time(lambda: engine.execute_batch(
            model, graphs, sources, steps=steps, backend="native", threads=args.threads), args.repeat)
        module = GNNModule.from_model(model)
        pi_decoder = module.plan().outputs["pi"]
        batch_s, batch = median_time(lambda: GraphBatch(sorted_graphs, sorted_sources, model.spec), args.repeat)

        def torch_run():
            with torch.no_grad():
                ro = module.rollout(batch, max(sorted_steps), hard=True, graph_steps=sorted_steps)
                return module.decode(pi_decoder, batch, ro.zs[-1], E=ro.Es[-1]).numpy()

        torch_s, torch_pi = median_time(torch_run, args.repeat)
        agree = 0
        for k, i in enumerate(order):
            start = batch.offsets[k]
            agree += np.array_equal(torch_pi[start:start + graphs[i].num_nodes] - start, native[i].outputs["pi"])
        loop = None
        if args.loop:
            few = min(args.loop, len(graphs))

            def one_by_one():
                for i in range(few):
                    engine.execute(model, graphs[i], sources[i], steps=steps[i], backend="native", threads=args.threads)

            loop = median_time(one_by_one, 1)[0] * len(graphs) / few
        row = {"processor": processor, "native_batch_s": native_s, "torch_rollout_s": torch_s,
               "torch_batch_build_s": batch_s, "torch_total_s": torch_s + batch_s,
               "ratio_torch_total_over_native": (torch_s + batch_s) / native_s,
               "ratio_torch_rollout_over_native": torch_s / native_s,
               "execute_loop_s_scaled": loop, "ratio_loop_over_batch": None if loop is None else loop / native_s,
               "pi_equal_graphs": agree, "graphs": len(graphs)}
        rows.append(row)
        print(f"{processor}: native batch {native_s:.2f} s | torch rollout {torch_s:.2f} s + batch build "
              f"{batch_s:.2f} s = {torch_s + batch_s:.2f} s ({(torch_s + batch_s) / native_s:.2f}x native; rollout "
              f"alone {torch_s / native_s:.2f}x)" + ("" if loop is None else
              f" | one execute per graph {loop:.1f} s ({loop / native_s:.1f}x)") +
              f" | pi equal on {agree}/{len(graphs)} graphs")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"date": datetime.date.today().isoformat(),
                       "command": " ".join(["python", "benchmarks/batch_eval.py", *(sys.argv[1:] if argv is None else argv)]),
                       "cpu": cpu, "threads": args.threads, "graphs": args.graphs, "nodes": args.nodes,
                       "hidden": args.hidden, "rows": rows}, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
