"""Atomic file writes: a reader never sees half a file, a crash never leaves one.

Every write goes to a temporary name in the target's folder (`.<name>.tmp-<pid>`, so a glob
such as `*.tfrecord` or `*.json` never matches it), is flushed to disk, then renamed over
the target with `os.replace`. A failed write (a full disk, Ctrl-C) removes the temporary
file and leaves the old target, if any, as it was.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any


def temporary_path(path: str, suffix: str = "") -> str:
    """The name `atomic_write` writes `path` under before renaming it."""
    folder, name = os.path.split(os.fspath(path))
    return os.path.join(folder, f".{name}.tmp-{os.getpid()}{suffix}")


def atomic_write(path: str, write: Callable[[str], None], suffix: str = "") -> None:
    """Calls `write(temp_path)`, syncs the file, then renames it to `path`.

    `suffix` ends the temporary name, for writers that insist on one (Keras: ".keras").
    """
    temp = temporary_path(path, suffix)
    try:
        write(temp)
        if os.path.isfile(temp):  # a folder (a SavedModel) is renamed as it is
            fd = os.open(temp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(temp, path)
    finally:
        if os.path.isfile(temp):
            os.remove(temp)


def write_bytes(path: str, data: bytes) -> None:
    """Writes `data` to `path` atomically."""
    def write(temp: str) -> None:
        with open(temp, "wb") as f:
            f.write(data)
    atomic_write(path, write)


def write_text(path: str, text: str) -> None:
    """Writes UTF-8 `text` to `path` atomically."""
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str, data: Any, indent: int = 2) -> None:
    """Writes `data` as JSON (no NaN: they are not JSON), atomically."""
    write_text(path, json.dumps(data, indent=indent, allow_nan=False) + "\n")


def read_json(path: str) -> Any | None:
    """The JSON in `path`, or None when it does not exist or is not valid JSON."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
