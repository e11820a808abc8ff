"""The CLRS-semantics references and the generators."""
from ._common import SIZES, er_graph


class References:
    params = (["bfs", "bellman_ford"], SIZES)
    param_names = ["algorithm", "nodes"]
    timeout = 600

    def setup(self, algorithm, nodes):
        import engine

        self.graph = er_graph(nodes)
        engine.reference(algorithm, er_graph(1000), 0)  # JIT

    def time_reference(self, algorithm, nodes):
        import engine

        engine.reference(algorithm, self.graph, 0, trace=False)


class Generators:
    params = (["er", "grid", "ba"], SIZES)
    param_names = ["family", "nodes"]
    timeout = 600

    def time_generate(self, family, nodes):
        from engine.graph import generate

        generate(family, nodes, weighted=True, seed=1)

    def peakmem_generate(self, family, nodes):
        from engine.graph import generate

        generate(family, nodes, weighted=True, seed=1)
