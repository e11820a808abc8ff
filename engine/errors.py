"""Exceptions raised at the edges of the engine (CLI, loaders, Model construction).

Every error names what is wrong and what is allowed.
"""


class EngineError(ValueError):
    """Base class for invalid input to the engine."""


class GraphError(EngineError):
    """A graph is malformed: bad ids, lengths, weights or sizes."""


class ModelError(EngineError):
    """A model spec or weight file is invalid or inconsistent."""


class BackendUnavailableError(RuntimeError):
    """A named backend cannot be loaded on this machine."""


class NegativeCycleError(EngineError):
    """A negative-weight cycle is reachable from the source (Bellman-Ford never settles)."""


class MemoryBudgetError(MemoryError):
    """A computation would need more memory than is available; refused before allocating."""
