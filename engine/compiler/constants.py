"""Constants of the compiled constructions, per dtype, and why they are exact.

* ``SATURATE = 1024``: ``sigmoid(1024)`` is exactly 1.0 and ``sigmoid(-1024)`` exactly 0.0
  in float32 and float64 (``exp(-1024)`` underflows to 0, ``exp(1024)`` overflows to inf),
  so a gate ``g * new + (1 - g) * h`` selects one side bit for bit.
* ``BIG_ID``: sentinel added to a node id; ``id + BIG_ID`` is an exact integer for
  ``id < BIG_ID`` (float32: ``2**23``, float64: ``2**40``). It bounds the node count.
* ``BIG_DIST``: "unreached" distance. ``BIG_DIST + w`` rounds back to ``BIG_DIST`` for every
  ``|w| <= MAX_ABS_WEIGHT``.
* ``BIG_TERM``: a sentinel that several terms of a sum may carry at once (the DFS
  construction's ``x - BIG (1 - c)`` choices): sums of up to three of them and a node id stay
  exact integers below ``2**24`` (float32: ``2**21``, float64: ``2**40``). It bounds the node
  count of models that use it.
* ``STEP_GAIN``: turns a positive difference ``t`` of two distances into a saturated gate
  (``STEP_GAIN * t - 1024 >= 2**27``). With nonzero ``|w| >= MIN_ABS_WEIGHT = 2**-60`` every
  distance is a multiple of ``2**-83`` (float32; ``2**-112`` in float64), so ``t > 0``
  implies ``t >= 2**-83``. Overflow of ``STEP_GAIN * t`` to inf is harmless: it only feeds
  the sigmoid.
"""
import numpy as np

SATURATE = 1024.0
MAX_ABS_WEIGHT = 2.0**40
MIN_ABS_WEIGHT = 2.0**-60

_PER_DTYPE = {
    "float32": {"BIG_ID": 2.0**23, "BIG_TERM": 2.0**21, "BIG_DIST": 2.0**100, "STEP_GAIN": 2.0**110},
    "float64": {"BIG_ID": 2.0**40, "BIG_TERM": 2.0**40, "BIG_DIST": 2.0**400, "STEP_GAIN": 2.0**140},
}


def constants(dtype) -> dict:
    name = np.dtype(dtype).name
    if name not in _PER_DTYPE:
        from ..errors import EngineError

        raise EngineError(f"compiled models support dtype float32 or float64, got {name!r}")
    return dict(_PER_DTYPE[name], SATURATE=SATURATE)
