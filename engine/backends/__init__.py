"""Backends behind one signature (:mod:`engine.backends.base`), chosen at first use.

Order of choice: an explicit name, then ``ENGINE_BACKEND``, then the first of
:data:`PREFERENCE` that loads (``torch`` is used only when named). Naming a backend that
cannot load is an error, never a silent fallback. Worker threads: an explicit count, then
``ENGINE_THREADS``, then the backend's default (all cores).
"""
from __future__ import annotations

import importlib
import os
import warnings

import numpy as np

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


def thread_count(threads=None) -> int | None:
    """The thread count to use: ``threads``, else ``$ENGINE_THREADS``, else None (the
    backend's default). A positive integer; more than :data:`MAX_THREADS_PER_CORE` per core
    is capped there with a warning (more threads than that only contend)."""
    source = "threads"
    if threads is None:
        env = os.environ.get("ENGINE_THREADS")
        if env is None or env.strip() == "":
            return None
        source = "ENGINE_THREADS"
        try:
            threads = int(env)
        except ValueError:
            raise EngineError(f"ENGINE_THREADS must be a positive integer, got {env!r}") from None
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise EngineError(f"{source} must be a positive integer, got {threads!r}")
    cap = MAX_THREADS_PER_CORE * (os.cpu_count() or 1)
    if threads > cap:
        warnings.warn(f"{source}={threads} is more than {MAX_THREADS_PER_CORE} per core; using {cap}",
                      RuntimeWarning, stacklevel=3)
        threads = cap
    return int(threads)


MAX_THREADS_PER_CORE = 4


def get_backend(name: str | None = None, threads: int | None = None):
    """Resolve a backend: ``name``, else ``$ENGINE_BACKEND``, else the first that loads; set
    its worker threads (:func:`thread_count`)."""
    threads = thread_count(threads)
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
    if threads is not None:
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


__all__ = ["BACKENDS", "PREFERENCE", "get_backend", "load_backend", "available_backends", "thread_count"]
