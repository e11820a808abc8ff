"""Compiled BFS, Bellman-Ford and DFS end to end (execute), with scipy baselines on the same graph."""
import os

from ._common import SIZES, er_graph, grid_graph


class CompiledER:
    params = (["bfs", "bellman_ford"], SIZES, ["auto", "dense", "active"])
    param_names = ["algorithm", "nodes", "mode"]
    timeout = 600

    def setup(self, algorithm, nodes, mode):
        import engine

        self.graph = er_graph(nodes)
        self.model = engine.compile(algorithm)
        engine.execute(self.model, er_graph(1000), 0)  # warm

    def time_execute(self, algorithm, nodes, mode):
        import engine

        engine.execute(self.model, self.graph, 0, mode=mode)

    def peakmem_execute(self, algorithm, nodes, mode):
        import engine

        engine.execute(self.model, self.graph, 0, mode=mode)

    def track_edges_per_second(self, algorithm, nodes, mode):
        import time

        import engine

        t = time.perf_counter()
        r = engine.execute(self.model, self.graph, 0, mode=mode)
        return self.graph.num_edges * r.steps / (time.perf_counter() - t)

    track_edges_per_second.unit = "edges/s"


class ScipyBaselines:
    params = (SIZES,)
    param_names = ["nodes"]

    def setup(self, nodes):
        self.A = er_graph(nodes).to_scipy()

    def time_breadth_first_order(self, nodes):
        from scipy.sparse.csgraph import breadth_first_order

        breadth_first_order(self.A, 0)

    def time_dijkstra(self, nodes):
        from scipy.sparse.csgraph import dijkstra

        dijkstra(self.A, indices=0)


class CompiledGrid:
    """High-diameter graph: active mode against dense mode."""

    params = (["auto", "dense"],)
    param_names = ["mode"]
    timeout = 600

    def setup(self, mode):
        import engine

        self.graph = grid_graph(1000 if os.environ.get("ENGINE_BENCH_LARGE") else 100)
        self.model = engine.compile("bfs")

    def time_bfs(self, mode):
        import engine

        engine.execute(self.model, self.graph, 0, mode=mode)

    def track_kept_aggregates(self, mode):
        """Share of node updates whose aggregate came from the kept (incremental) aggregates."""
        import engine

        r = engine.execute(self.model, self.graph, 0, mode=mode)
        return r.aggregates_reused / max(r.node_updates, 1)

    track_kept_aggregates.unit = "fraction"


class CompiledDFS:
    """Compiled DFS: 3n steps of one layer each; active execution makes a step local."""

    params = ([10**4, 10**5],)
    param_names = ["nodes"]
    timeout = 600

    def setup(self, nodes):
        import engine
        from engine.graph import generators

        self.graph = generators.erdos_renyi(nodes, 10, directed=True, seed=0)
        self.graph.out_csr()
        self.model = engine.compile("dfs")

    def time_execute(self, nodes):
        import engine

        engine.execute(self.model, self.graph)

    def track_steps_per_second(self, nodes):
        import time

        import engine

        t = time.perf_counter()
        r = engine.execute(self.model, self.graph)
        return r.steps / (time.perf_counter() - t)

    track_steps_per_second.unit = "steps/s"

    def track_kept_aggregates(self, nodes):
        """Share of node updates whose aggregate came from the kept (incremental) aggregates."""
        import engine

        r = engine.execute(self.model, self.graph)
        return r.aggregates_reused / max(r.node_updates, 1)

    track_kept_aggregates.unit = "fraction"

    def track_updates_per_step(self, nodes):
        """Node updates per step: what a step touches (7.7 on these graphs; a rise means that
        more rows are recomputed for the same events)."""
        import engine

        r = engine.execute(self.model, self.graph)
        return r.node_updates / r.steps

    track_updates_per_step.unit = "updates/step"


class CompiledDFSInCLRSMPNN:
    """DFS compiled into CLRS's fully connected MPNN (n^2 messages of a [h, h] message MLP for
    each of the 3n steps, hints fed back): CLRS's test size and twice it."""

    params = ([64, 128],)
    param_names = ["nodes"]
    timeout = 600

    def setup(self, nodes):
        import numpy as np

        import engine
        from engine.algorithms.samplers import sample

        self.graph = sample("dfs", nodes, np.random.RandomState(0), p=(0.5,))[1]
        self.model = engine.compile("dfs", processor="mpnn", hidden=128, message_graph="complete")
        self.steps = 3 * nodes

    def time_execute(self, nodes):
        import engine

        engine.execute(self.model, self.graph, steps=self.steps)
