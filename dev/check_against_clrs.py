"""Cross-check engine.reference against DeepMind's own CLRS algorithm code.

Development tool, not part of the test suite (it needs DeepMind's package, which pulls in
jax and tensorflow). Install the code only, then run this script:

    pip install --no-deps dm-clrs
    python dev/check_against_clrs.py [--graphs 300]

CLRS's ``clrs/_src/algorithms/graphs.py`` is loaded from the installed package with small
stand-ins for ``chex`` and ``clrs._src.probing`` (which only record the probes), so jax and
tensorflow are not needed. Nothing from CLRS is copied into the project.
"""
from __future__ import annotations

import argparse
import collections
import importlib.util
import pathlib
import sys
import types

import numpy as np


def _load_clrs_graphs():
    spec = importlib.util.find_spec("clrs")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("dm-clrs is not installed: pip install --no-deps dm-clrs")
    root = pathlib.Path(list(spec.submodule_search_locations)[0])
    path = root / "_src" / "algorithms" / "graphs.py"

    chex = types.ModuleType("chex")
    chex.assert_rank = lambda *a, **k: None
    chex.Array = np.ndarray

    class Stage:
        INPUT, OUTPUT, HINT = "input", "output", "hint"

    probing = types.ModuleType("clrs._src.probing")
    probing.ProbesDict = dict
    probing.initialize = lambda spec: {"input": {}, "output": {}, "hint": {}}

    def push(probes, stage, next_probe):
        for k, v in next_probe.items():
            probes[stage].setdefault(k, []).append(np.array(v, dtype=float))

    probing.push = push
    probing.finalize = lambda probes: None
    probing.mask_one = lambda i, n: np.eye(n)[i]
    probing.array_cat = lambda a, n: np.eye(n)[a]
    probing.graph = lambda A: ((A + np.eye(A.shape[0])) != 0).astype(float)
    probing.array = lambda a: a
    probing.heap = lambda *a: None
    probing.strings_id = probing.strings_pair = probing.strings_pred = lambda *a: None
    specs = types.ModuleType("clrs._src.specs")
    specs.Stage = Stage
    specs.SPECS = collections.defaultdict(dict)
    specs.OutputClass = object
    pkg = types.ModuleType("clrs._src")
    pkg.probing, pkg.specs = probing, specs
    sys.modules.update({"chex": chex, "clrs": types.ModuleType("clrs"), "clrs._src": pkg,
                        "clrs._src.probing": probing, "clrs._src.specs": specs})
    mod_spec = importlib.util.spec_from_file_location("clrs_graphs_under_test", path)
    module = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(module)
    return module


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--graphs", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    clrs = _load_clrs_graphs()

    import engine
    from engine.algorithms.samplers import sample

    rng = np.random.RandomState(args.seed)
    checked = {"bfs": 0, "bellman_ford": 0, "dfs": 0}
    for i in range(args.graphs):
        for algo in checked:
            n = int(rng.choice([4, 5, 7, 11, 13, 16, 20, 32]))
            A, graph, source = sample(algo, n, rng, p=(0.1, 0.2, 0.5, 0.8), dtype="float64")
            if i % 3 == 0 and algo != "bellman_ford":  # also directed graphs for BFS
                A = rng.binomial(1, 0.3, size=(n, n)).astype(float)
                graph = engine.Graph.from_dense(A, dtype="float64")
            pi, probes = getattr(clrs, algo)(A, source) if source is not None else getattr(clrs, algo)(A)
            ours = engine.reference(algo, graph, source, trace=True)
            assert np.array_equal(ours.outputs["pi"], pi), (algo, i, "pi")
            hints = probes["hint"]
            for name, rows in hints.items():
                want = np.stack(rows)
                got = ours.hints[name]
                assert got.shape == want.shape, (algo, name, got.shape, want.shape)
                assert np.array_equal(got.astype(float), want), (algo, i, name)
            assert ours.steps == len(next(iter(hints.values())))
            checked[algo] += 1
    print("matches DeepMind's CLRS code (outputs, every hint, step count):",
          ", ".join(f"{k}: {v} graphs" for k, v in checked.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
