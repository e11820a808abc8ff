"""The runtime: executing a Model on a graph (:func:`execute`).

* :mod:`.executor`: :func:`execute`, :class:`ExecutionResult`, argument and domain checks;
* :mod:`.batch`: :func:`execute_batch`, many graphs stepped together as disjoint unions;
* :mod:`.bound`: a model's plan bound to a graph and backend (inputs, buffers, graph state,
  decoders, hint feedback);
* :mod:`.python_loop`: the dense step and the active stepper, driven from Python;
* :mod:`.native_loop`: the native backend's own step loop and its arguments.
"""
from .batch import execute_batch
from .executor import MODES, ExecutionResult, check_domain, execute

__all__ = ["MODES", "ExecutionResult", "check_domain", "execute", "execute_batch"]
