"""Model spec, weight I/O and the registry of architecture pieces."""
from .spec import Model

__all__ = ["Model"]
