"""Files the engine writes: checked before work starts, replaced atomically."""
from __future__ import annotations

import csv
import json
import os
import tempfile

from .errors import EngineError


def writable_file(path: str, what: str) -> str:
    """Check, before any work is done, that ``path`` can be (re)written as a regular file:
    its directory exists and is writable, and the path is not a directory or a special
    file. Raises :class:`EngineError` naming the problem."""
    path = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise EngineError(f"{what} {path}: the directory {parent} does not exist")
    if os.path.exists(path) and not os.path.isfile(path):
        raise EngineError(f"{what} {path} exists and is not a regular file (a directory or a device); "
                          "give a file path")
    if not os.access(parent, os.W_OK):
        raise EngineError(f"{what} {path}: the directory {parent} is not writable")
    return path


def atomic_write(path: str, write) -> None:
    """Write a file by ``write(tmp_path)`` to a temporary name in the same directory, then
    rename it over ``path``; on failure the temporary file is removed and ``path`` untouched."""
    path = os.fspath(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp",
                               dir=os.path.dirname(os.path.abspath(path)))
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def output_dir(out: str, names) -> str:
    """Create the output directory ``out`` if needed and check, before any work, that each
    file of ``names`` can be (re)placed there."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise EngineError(f"--out {out} exists and is not a directory")
    os.makedirs(out, exist_ok=True)
    for name in names:
        writable_file(os.path.join(out, name), "output file")
    return out


def write_csv(path: str, rows: list) -> None:
    """A tidy table: one row per dict, the columns in order of first appearance, lists and
    dicts as JSON; written atomically."""
    columns = []
    for r in rows:
        columns += [c for c in r if c not in columns]

    def write(tmp):
        with open(tmp, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=columns)
            w.writeheader()
            for r in rows:
                w.writerow({k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in r.items()})

    atomic_write(path, write)
