"""engine: neural compilation and exact GNN execution for algorithmic reasoning.

``import engine`` loads NumPy and SciPy only; Numba and torch are imported when a backend
or the trainer needs them.
"""
from .algorithms import ALGORITHMS, reference
from .compiler import compile
from .runtime import ExecutionResult, execute, execute_batch
from .errors import (BackendUnavailableError, EngineError, GraphError, MemoryBudgetError, ModelError,
                     NegativeCycleError)
from .graph import Graph, generate
from .model import Model

__version__ = "0.1.0"

__all__ = ["ALGORITHMS", "Graph", "Model", "compile", "execute", "execute_batch", "ExecutionResult", "generate", "reference", "EngineError", "GraphError", "ModelError",
           "BackendUnavailableError", "NegativeCycleError", "MemoryBudgetError", "__version__"]
