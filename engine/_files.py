"""Files the engine writes: checked before work starts, replaced atomically."""
from __future__ import annotations

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
