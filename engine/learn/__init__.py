"""Learning: the architecture family as a torch module (needs the ``torch`` extra).

Importing this package imports torch; ``import engine`` does not.
"""
from .module import GNNModule, GraphBatch

__all__ = ["GNNModule", "GraphBatch"]
