"""Atomic file writes: a reader never sees half a file, a crash never leaves one.

Every write goes to a temporary name in the target's folder (`.<name>.tmp-<pid>`, so a glob
such as `*.tfrecord` or `*.json` never matches it), is flushed to disk, then renamed over
the target with `os.replace`. A failed write (a full disk, Ctrl-C) removes the temporary
file and leaves the old target, if any, as it was; a write that ran out of space raises
`DiskFullError`, one line naming the file, which the command-line tools print as it is.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from typing import Any


_NO_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
# As TensorFlow's C++ file writers report them, inside their own error messages.
_NO_SPACE_REASONS = tuple(os.strerror(code) for code in _NO_SPACE_ERRNOS)


class DiskFullError(OSError):
    """A file could not be written for want of space (a full disk, a quota, a file size
    limit); its message names the file and says what to do."""


def out_of_space_reason(error: BaseException) -> str | None:
    """The operating system's reason when `error` is a write that ran out of space (an
    OSError, or a TensorFlow error whose message holds the reason), else None."""
    if isinstance(error, OSError) and error.errno in _NO_SPACE_ERRNOS:
        return os.strerror(error.errno)
    text = str(error)
    return next((reason for reason in _NO_SPACE_REASONS if reason in text), None)


def disk_full(path: str, reason: str, cleaned: bool = True) -> DiskFullError:
    """The error for `path`, which could not be written (`cleaned`: nothing of it was
    kept)."""
    kept = " nothing of it was kept." if cleaned else ""
    return DiskFullError(
        f"{path}: could not be written ({reason});{kept} Free space on that disk and rerun "
        "the same command: it goes on from what was finished")


def remove_partial(path: str) -> None:
    """Removes what a failed write left at `path` (a file or a folder), if anything."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.remove(path)


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
        with writing(path, leftovers=lambda: [temp]):
            write(temp)
            if os.path.isfile(temp):  # a folder (a SavedModel) is renamed as it is
                fd = os.open(temp, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            os.replace(temp, path)
    finally:  # also after Ctrl-C
        remove_partial(temp)


@contextlib.contextmanager
def writing(path: str, leftovers: Callable[[], Iterable[str]] | None = None
            ) -> Iterator[None]:
    """Around writing `path`: when the write fails, what it left is removed (`path`, or
    what `leftovers()` lists then), and a write that ran out of space raises
    `DiskFullError` naming `path`."""
    try:
        yield
    except Exception as error:
        for partial in (leftovers() if leftovers is not None else [path]):
            remove_partial(partial)
        reason = out_of_space_reason(error)
        if reason is not None:
            raise disk_full(path, reason) from None
        raise


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
