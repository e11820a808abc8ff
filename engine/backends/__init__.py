"""Backends behind one signature (:mod:`engine.backends.base`), chosen at first use.

Order of choice: an explicit name, then ``ENGINE_BACKEND``, then the first of
:data:`PREFERENCE` that loads (``torch`` is used only when named). Naming a backend that
cannot load is an error, never a silent fallback.
"""
from __future__ import annotations

import importlib
import os
import warnings

from ..errors import BackendUnavailableError, EngineError

# name -> (module, class)
BACKENDS = {
    "native": ("engine.backends.native", "NativeBackend"),
    "numba": ("engine.backends.numba_backend", "NumbaBackend"),
    "reference": ("engine.backends.reference", "ReferenceBackend"),
    "torch": ("engine.backends.torch_backend", "TorchBackend"),  # needs the torch extra
}
PREFERENCE = ("native", "numba", "reference")
_loaded: dict = {}
_warned: set = set()


def load_backend(name: str):
    """Load (once) and return the backend ``name``; raise if it cannot load."""
    if name not in BACKENDS:
        raise EngineError(f"unknown backend {name!r}; allowed: {list(BACKENDS)}")
    if name not in _loaded:
        module, cls = BACKENDS[name]
        try:
            _loaded[name] = getattr(importlib.import_module(module), cls)()
        except ImportError as exc:
            raise BackendUnavailableError(f"backend {name!r} cannot load here: {exc}") from None
    return _loaded[name]


def get_backend(name: str | None = None, threads: int | None = None):
    """Resolve a backend: ``name``, else ``$ENGINE_BACKEND``, else the first that loads."""
    chosen = name or os.environ.get("ENGINE_BACKEND") or None
    if chosen is not None:
        backend = load_backend(chosen)
    else:
        backend = None
        for candidate in PREFERENCE:
            try:
                backend = load_backend(candidate)
                break
            except BackendUnavailableError as exc:
                if candidate == PREFERENCE[0] and candidate not in _warned:
                    _warned.add(candidate)
                    warnings.warn(f"{exc}; falling back to a slower backend (rebuild with a C++ compiler, "
                                  "see README)", RuntimeWarning, stacklevel=2)
                continue
        if backend is None:  # pragma: no cover - reference always loads
            raise BackendUnavailableError("no backend could load")
    if threads:
        backend.set_threads(threads)
    return backend


def available_backends() -> list:
    """Names of the backends that load on this machine."""
    names = []
    for name in BACKENDS:
        try:
            load_backend(name)
            names.append(name)
        except BackendUnavailableError:
            pass
    return names


__all__ = ["BACKENDS", "PREFERENCE", "get_backend", "load_backend", "available_backends"]
