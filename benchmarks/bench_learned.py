"""One learned step (hidden 128, CLRS MPNN and GATv2 processors) on an Erdős–Rényi graph:
the executor's backends against the torch module with the same weights."""
from ._common import SIZES, er_graph


def _require_torch():
    """torch, or NotImplementedError, which asv reports as a skipped case."""
    try:
        import torch
    except ImportError:
        raise NotImplementedError("torch is not installed")
    return torch


def _model(processor):
    from engine.algorithms.specs import learned_spec
    from engine.model.factory import random_model

    spec = learned_spec("bfs", processor, 128, hint_mode="decoded_only")
    if processor == "gatv2":  # GATv2's weights have a structure random_model lacks (the module refuses those)
        _require_torch()
        from engine.learn import GNNModule

        return GNNModule.initialised(spec, seed=0).to_model()
    return random_model(spec, seed=0)


class LearnedStep:
    params = (["mpnn", "gatv2"], SIZES, ["native", "torch-module"])
    param_names = ["processor", "nodes", "runner"]
    timeout = 900

    def setup(self, processor, nodes, runner):
        self.graph = er_graph(nodes)
        self.model = _model(processor)
        if runner == "torch-module":
            self.torch = _require_torch()
            from engine.learn import GNNModule, GraphBatch

            self.module = GNNModule.from_model(self.model)
            self.batch = GraphBatch(self.graph, 0, self.model.spec)
            with self.torch.no_grad():
                self.h = self.module.initial_state(self.batch)

    def _step(self, runner):
        if runner == "torch-module":
            with self.torch.no_grad():
                self.module.step(self.batch, self.h)
        else:
            import engine

            engine.execute(self.model, self.graph, 0, backend=runner, steps=1)

    def time_step(self, processor, nodes, runner):
        self._step(runner)

    def peakmem_step(self, processor, nodes, runner):
        self._step(runner)


class TrainingStep:
    """One training step as ``python -m engine.train`` takes it (loss on a CLRS batch,
    backward, clipping, Adam), hidden 128, batch 32, under each protocol and processor (the
    pointer decoders' and GATv2's edge scores in the fused native kernel)."""

    params = (["bfs", "bellman_ford", "dfs"], ["sparse", "clrs"], ["mpnn", "gatv2"])
    param_names = ["algorithm", "protocol", "processor"]
    timeout = 600

    def setup(self, algorithm, protocol, processor):
        _require_torch()
        import numpy as np

        from engine.learn import trainer

        self.trainer = trainer
        self.cfg = trainer.TrainConfig.from_fields({"algo": algorithm, "protocol": protocol, "processor": processor})
        self.module = trainer.initial_module(self.cfg, self.cfg.spec())
        self.opt = trainer.make_optimizer(self.module, self.cfg)
        self.data = trainer.sample_batch(self.cfg, np.random.RandomState(0), self.cfg.batch, self.cfg.train_sizes)

    def time_step(self, algorithm, protocol, processor):
        self.trainer.gradient(self.module, self.cfg, self.data, self.opt)
        self.opt.step()


class BatchEvaluation:
    """A CLRS-size test set at once (``benchmarks/batch_eval.py`` at 500 graphs of 64 nodes):
    ``engine.execute_batch`` against the torch module batched the same way, learned BFS with
    hidden 128 and hints fed back, each graph for its own reference length."""

    params = (["mpnn", "gatv2"], ["native-batch", "torch-module"])
    param_names = ["processor", "runner"]
    timeout = 600

    def setup(self, processor, runner):
        self.torch = _require_torch()  # the module initialises the weights of both runners
        from engine.learn import GNNModule, GraphBatch

        from .batch_eval import by_steps_descending, learned_model, test_set

        self.graphs, self.sources, self.steps = test_set(500, 64, seed=0)
        self.model = learned_model(processor, 128)
        if runner == "torch-module":
            _, graphs, sources, self.sorted_steps = by_steps_descending(self.graphs, self.sources, self.steps)
            self.module = GNNModule.from_model(self.model)
            self.batch = GraphBatch(graphs, sources, self.model.spec)

    def time_evaluate(self, processor, runner):
        if runner == "torch-module":
            with self.torch.no_grad():
                self.module.rollout(self.batch, max(self.sorted_steps), hard=True, graph_steps=self.sorted_steps)
        else:
            import engine

            engine.execute_batch(self.model, self.graphs, self.sources, steps=self.steps, backend="native")


class ProductFloor:
    """The floor of a learned step's products: (n x 131) by (131 x 128), the node-side shape
    at hidden 128, by NumPy's ``matmul`` (BLAS, fused multiply-adds) and by the native blocked
    product (unfused, inputs ascending: the kernels' order)."""

    params = (SIZES, ["numpy-matmul", "native-project"])
    param_names = ["nodes", "runner"]

    def setup(self, nodes, runner):
        import numpy as np

        rng = np.random.default_rng(0)
        self.A = rng.random((nodes, 131), dtype=np.float32)
        self.W = rng.random((131, 128), dtype=np.float32)
        self.Y = np.zeros((nodes, 128), np.float32)
        if runner == "native-project":
            from engine import _native

            self.project = _native.project

    def time_product(self, nodes, runner):
        import numpy as np

        if runner == "numpy-matmul":
            np.matmul(self.A, self.W, out=self.Y)
        else:
            self.project(self.A, self.W, self.Y)
