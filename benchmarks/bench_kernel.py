"""One sparse aggregation pass (the kernel), by aggregation, feature width and backend."""
from ._common import SIZES, backends, er_graph, pass_inputs


class EdgePass:
    params = (["native", "numba"], ["max", "min", "sum", "argmax"], [1, 16, 128])
    param_names = ["backend", "aggregation", "width"]
    timeout = 300

    def setup(self, backend, aggregation, width):
        from engine.backends import load_backend

        if backend not in backends():
            raise NotImplementedError(f"{backend} is not available")
        self.graph = er_graph(SIZES[0])
        self.backend = load_backend(backend)
        self.args = pass_inputs(self.graph, width, aggregation)
        self.backend.edge_pass(self.graph, self.args)  # JIT / first touch

    def time_edge_pass(self, backend, aggregation, width):
        self.backend.edge_pass(self.graph, self.args)

    def track_edges_per_second(self, backend, aggregation, width):
        import time

        t = time.perf_counter()
        self.backend.edge_pass(self.graph, self.args)
        return self.graph.num_edges / (time.perf_counter() - t)

    track_edges_per_second.unit = "edges/s"

    def peakmem_edge_pass(self, backend, aggregation, width):
        self.backend.edge_pass(self.graph, self.args)
