"""Graphs: CSR by destination, constructors, loaders and generators."""
from .csr import Graph
from .generators import FAMILIES, generate
from .io import load, load_edge_list, load_matrix_market

__all__ = ["Graph", "FAMILIES", "generate", "load", "load_edge_list", "load_matrix_market"]
