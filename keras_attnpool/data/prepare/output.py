"""The output folder of `prepare`: atomic files, a lock, and what has been done so far.

Layout:

    OUT/manifest.json                          written last, atomically
    OUT/<split>-<index>-of-<count>.tfrecord    complete shards only (`records.schema`)
    OUT/<shard>.tfrecord.index                 each shard's frame index (`records.frame_index`)
    OUT/.prepare/state.json                    settings + plan digest of this folder
    OUT/.prepare/<shard name>.json             one per finished shard: what it holds
    OUT/.prepare/lock                          held (flock) while a prepare runs

Every file is written atomically (`keras_attnpool.files`: a temporary name that starts
with "." and ends in ".tmp-<pid>", so `*.tfrecord` never matches it, flushed to disk, then
renamed with `os.replace`). A shard is done when its `.tfrecord` and its
`.prepare/<shard>.json` both exist: the shard is renamed first, so a crash between the two
only means the shard is written again (with the same bytes: shard contents are
deterministic). A finished shard without its index (a crash
in between, or a folder prepared before indexes existed) gets the index built from the
shard, without converting its media again.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
from collections.abc import Iterator
from typing import Any

from keras_attnpool.files import read_json, write_json

try:
    import fcntl
except ImportError:  # Windows: no lock, one prepare per folder is up to the user
    fcntl = None

# The version of what a prepare writes (records, indexes, manifest): the manifest's `format`.
FORMAT = "keras_attnpool.prepared/2"
MANIFEST = "manifest.json"
STATE_DIR = ".prepare"
STATE = "state.json"
# Indentation of the JSON files a prepare writes (manifest, state, finished shards).
JSON_INDENT = 1
_SHARD_FILE = re.compile(r"^[A-Za-z0-9_]+-\d{5}-of-\d{5}\.tfrecord(\.index)?$")


class OutputDirError(ValueError):
    """The output folder cannot be used as asked; the message says why and what to do."""


class OutputDir:
    """One prepare output folder."""

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(os.path.expanduser(os.fspath(path)))
        self.state_dir = os.path.join(self.path, STATE_DIR)

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    def record_path(self, shard: str) -> str:
        """Where the finished-shard record of `shard` lives."""
        return os.path.join(self.state_dir, shard + ".json")

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Creates the folder and holds its lock; a second prepare into it is refused."""
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise OutputDirError(f"{self.path}: output_dir is a file; pass a folder")
        os.makedirs(self.state_dir, exist_ok=True)
        with open(os.path.join(self.state_dir, "lock"), "a") as handle:
            if fcntl is not None:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError as e:
                    raise OutputDirError(f"{self.path}: another prepare is writing into this "
                                         "folder; wait for it or choose another "
                                         "output_dir") from e
            yield

    def our_files(self) -> list[str]:
        """Shards, manifest and temp files that a prepare wrote here."""
        names = [n for n in os.listdir(self.path)
                 if _SHARD_FILE.match(n) or n == MANIFEST or ".tmp-" in n]
        return sorted(os.path.join(self.path, n) for n in names)

    def remove_temp_files(self) -> None:
        """Deletes temp files left by a run that was killed."""
        for path in glob.glob(os.path.join(glob.escape(self.path), ".*.tmp-*")):
            os.remove(path)
        for path in glob.glob(os.path.join(glob.escape(self.state_dir), ".*.tmp-*")):
            os.remove(path)

    def claim(self, state: dict[str, Any], overwrite: bool) -> None:
        """Makes this folder hold `state`'s records, or refuses with what differs.

        The same state: nothing happens (resume). Another state (or records without one):
        OutputDirError unless `overwrite`. `overwrite` deletes the records, manifest and
        progress that a prepare wrote here (other files are left alone), so that everything
        is written again.
        """
        old = read_json(os.path.join(self.state_dir, STATE))
        if old == state and not overwrite:
            return
        ours = self.our_files()
        if old is not None or ours:
            if not overwrite:
                raise OutputDirError(f"{self.path}: holds records prepared with different "
                                     f"settings ({describe_change(old, state)}); pass "
                                     "overwrite=True (--overwrite) to replace them, or "
                                     "choose another output_dir")
            for path in ours:
                os.remove(path)
            for name in os.listdir(self.state_dir):
                if name != "lock":
                    path = os.path.join(self.state_dir, name)
                    shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
        write_json(os.path.join(self.state_dir, STATE), state, indent=JSON_INDENT)

    def written_format(self) -> str | None:
        """The `format` of what a prepare wrote here (None: nothing, or no state)."""
        state = read_json(os.path.join(self.state_dir, STATE))
        return state.get("format") if isinstance(state, dict) else None

    def finished(self, shard: str) -> dict[str, Any] | None:
        """The finished-shard record of `shard`, or None when it must be (re)written."""
        if not os.path.isfile(self.file(shard)):
            return None
        record = read_json(self.record_path(shard))
        return record if isinstance(record, dict) and record.get("name") == shard else None


def describe_change(old: dict[str, Any] | None, new: dict[str, Any]) -> str:
    """A short human description of how two states differ."""
    if old is None:
        return "no .prepare/state.json says how they were made"
    changes = []
    old_settings, new_settings = old.get("settings", {}), new.get("settings", {})
    for key in sorted(set(old_settings) | set(new_settings)):
        if old_settings.get(key) != new_settings.get(key):
            changes.append(f"{key}: {old_settings.get(key)!r} -> {new_settings.get(key)!r}")
    if old.get("plan") != new.get("plan") and not changes:
        changes.append(f"the dataset's samples changed (now {new.get('counts')}, "
                       f"were {old.get('counts')})")
    return "; ".join(changes) or "format version changed"
