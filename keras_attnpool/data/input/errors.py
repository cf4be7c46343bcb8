"""What the command-line tools print when a pipeline fails to read its records."""

import glob
import os
import re
from typing import Optional

import tensorflow as tf

from keras_attnpool.data.input.indexed import FRAMES_UNREAD
from keras_attnpool.data.records import frame_index, tfrecord

# What TensorFlow says of a damaged record (its checksum) or of JPEG bytes it cannot decode,
# and what `indexed.read_frames` says of frames it could not read; none names the file.
_DAMAGE = re.compile(r"corrupted record|Invalid JPEG data|jpeg::Uncompress|"
                     r"Not a JPEG file|Premature end of JPEG|Unknown image file format|"
                     + FRAMES_UNREAD, re.I)
# The data of `indexed.read_frames`'s failed check: the batch's first shard, frames read, asked.
_UNREAD = re.compile(FRAMES_UNREAD + r".*?\] \[(.+?)\] \[frames read:\] \[(\d+)\] \[of\] "
                     r"\[(\d+)\]")


def damaged_file(records_dir: str) -> Optional[str]:
    """The first damaged file of a records folder, as one line naming it and the byte offset
    of its bad record (the indexes are checked first, being small; then the shards); None
    when every record passes its checksums. Reads every file once, whole."""
    shards = sorted(glob.glob(os.path.join(glob.escape(records_dir), "*.tfrecord")))
    indexes = [frame_index.index_path(s) for s in shards
               if os.path.isfile(frame_index.index_path(s))]
    error = tfrecord.first_corrupt_file(indexes + shards)
    return None if error is None else str(error)


def input_error_message(error: BaseException, records_dir: Optional[str] = None
                        ) -> Optional[str]:
    """One line for an error raised while a pipeline read its records (a
    `tf.errors.OpError` from a dataset iterator: a stale frame index, a corrupt shard), for
    the command-line tools to print instead of TensorFlow's traceback; None for any other
    error. With `records_dir`, a damaged record or an undecodable JPEG is traced to its
    file (`damaged_file`)."""
    if not isinstance(error, tf.errors.OpError) or "Iterator" not in str(error):
        return None
    text = str(error)
    if records_dir and os.path.isdir(records_dir) and _DAMAGE.search(text):
        found = damaged_file(records_dir)
        if found:
            return found
    unread = _UNREAD.search(text)
    if unread:
        shard, read, count = unread.groups()
        return (f"{shard}: {FRAMES_UNREAD} at the positions its {frame_index.INDEX_SUFFIX} "
                f"file gives (read {read} of the batch's {count}, from this shard or "
                "another of the batch): a shard or its index was replaced or damaged "
                "after prepare wrote them, or a shard is missing; prepare the records again "
                "(training/prepare.py --overwrite)")
    core = re.sub(r"\{\{[^}]*\}\}|\[\[.*?\]\]|\[Op:[^\]]*\]", " ", text, flags=re.S)
    core = re.sub(r"\s+name:\s*$", "", " ".join(core.split())).rstrip(" .")
    return (f"reading the prepared records failed ({type(error).__name__}: {core}); check "
            "the record files, or prepare them again (training/prepare.py --overwrite)")
