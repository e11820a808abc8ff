"""Compiled BFS and Bellman-Ford end to end (execute), with scipy baselines on the same graph."""
from ._common import SIZES, er_graph, grid_graph


class CompiledER:
    params = (["bfs", "bellman_ford"], SIZES, ["auto", "dense"])
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

        self.graph = grid_graph(100)
        self.model = engine.compile("bfs")

    def time_bfs(self, mode):
        import engine

        engine.execute(self.model, self.graph, 0, mode=mode)
