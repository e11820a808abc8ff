"""One learned step (hidden 128, CLRS MPNN and GATv2 processors) on an Erdős–Rényi graph:
the executor's backends against the torch module with the same weights."""
from ._common import SIZES, er_graph


def _model(processor):
    from engine.algorithms.specs import learned_spec
    from engine.model.factory import random_model

    return random_model(learned_spec("bfs", processor, 128, hint_mode="decoded_only"), seed=0)


class LearnedStep:
    params = (["mpnn", "gatv2"], SIZES, ["native", "torch-module"])
    param_names = ["processor", "nodes", "runner"]
    timeout = 900

    def setup(self, processor, nodes, runner):
        self.graph = er_graph(nodes)
        self.model = _model(processor)
        if runner == "torch-module":
            try:
                import torch
            except ImportError:
                raise NotImplementedError("torch is not installed")  # asv skips the case
            from engine.learn import GNNModule, GraphBatch

            self.torch = torch
            self.module = GNNModule.from_model(self.model)
            self.batch = GraphBatch(self.graph, 0, self.model.spec)
            with torch.no_grad():
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
    backward, clipping, Adam), hidden 128, batch 32, under each protocol."""

    params = (["bfs", "bellman_ford", "dfs"], ["sparse", "clrs"])
    param_names = ["algorithm", "protocol"]
    timeout = 600

    def setup(self, algorithm, protocol):
        try:
            import torch  # noqa: F401
        except ImportError:
            raise NotImplementedError("torch is not installed")  # asv skips the case
        import numpy as np

        from engine.learn import trainer

        self.trainer = trainer
        self.cfg = trainer.TrainConfig.from_fields({"algo": algorithm, "protocol": protocol})
        self.module = trainer.initial_module(self.cfg, self.cfg.spec())
        self.opt = trainer.make_optimizer(self.module, self.cfg)
        self.data = trainer.sample_batch(self.cfg, np.random.RandomState(0), self.cfg.batch, self.cfg.train_sizes)

    def time_step(self, algorithm, protocol):
        self.trainer.gradient(self.module, self.cfg, self.data, self.opt)
        self.opt.step()
