"""What the command lines share: argument types, the error convention, atomic output files.

Every command line exits 0 on success, 1 when a run finishes but its result is wrong (a
mismatch against the reference, a run that did not settle), and 2 on invalid input, with a
one-line message on stderr naming the problem and what is allowed (:func:`run_main`).
"""
from __future__ import annotations

import argparse
import math
import sys

from .errors import BackendUnavailableError, EngineError


def parse_count(text: str) -> int:
    """Parse ``1e6``, ``1_000_000`` or ``1000000`` as a positive integer."""
    try:
        value = float(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of nodes like 1e6, got {text!r}") from None
    if not math.isfinite(value) or not value.is_integer() or value < 1:
        raise argparse.ArgumentTypeError(f"the number of nodes must be a positive integer, got {text!r}")
    return int(value)


def parse_counts(text: str) -> list:
    """A comma-separated list of :func:`parse_count` values."""
    return [parse_count(s) for s in text.split(",")]


def parse_seeds(text: str) -> list:
    """``"0,1,2"`` or inclusive ranges ``"0-63"``, comma-separated, non-negative, ascending ranges."""
    seeds = []
    for part in text.split(","):
        lo, sep, hi = part.strip().partition("-")
        try:
            a, b = (int(lo), int(hi)) if sep else (int(part), int(part))
        except ValueError:
            raise argparse.ArgumentTypeError(f"seeds are integers or ranges like 0-4, got {part!r}") from None
        if a < 0 or b < a:
            raise argparse.ArgumentTypeError(f"a seed range runs from a non-negative seed up, got {part!r}")
        seeds += list(range(a, b + 1))
    return seeds


def finite_float(text: str) -> float:
    """A finite real number."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def positive_float(text: str) -> float:
    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    value = finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative number, got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr (and exit 2), as every error of
    the command lines is: ``error: <what is wrong> (see --help)``."""

    def error(self, message):
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def error(message: str) -> int:
    """Print ``error: message`` on one line to stderr; returns 2 (invalid input)."""
    print(f"error: {' '.join(str(message).split())}", file=sys.stderr)
    return 2


def run_main(body, argv=None) -> int:
    """Run ``body(argv)``: invalid input (the engine's errors, a refused allocation, an
    unreadable or unwritable file, a bad option) becomes one line on stderr and exit 2."""
    try:
        return body(argv)
    except SystemExit as exc:  # argparse: it printed its usage line already
        return int(exc.code) if isinstance(exc.code, int) else 2
    except (EngineError, MemoryError, BackendUnavailableError) as exc:
        return error(exc)
    except OSError as exc:
        where = f" {exc.filename}" if getattr(exc, "filename", None) else ""
        return error(f"{exc.strerror or exc}{':' if where else ''}{where}")
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
