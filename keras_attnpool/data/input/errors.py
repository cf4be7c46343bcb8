"""What the command-line tools print when a pipeline fails to read its records."""

import re
from typing import Optional

import tensorflow as tf


def input_error_message(error: BaseException) -> Optional[str]:
    """One line for an error raised while a pipeline read its records (a
    `tf.errors.OpError` from a dataset iterator: a stale frame index, a corrupt shard), for
    the command-line tools to print instead of TensorFlow's traceback; None for any other
    error."""
    if not isinstance(error, tf.errors.OpError) or "Iterator" not in str(error):
        return None
    text = str(error)
    # A message of ours, raised in a tf.numpy_function (input.indexed.read_frames).
    ours = re.findall(r"^(?:ValueError|OSError): (.+)$", text, flags=re.M)
    if ours:
        return ours[-1].strip()
    core = re.sub(r"\{\{[^}]*\}\}|\[\[.*?\]\]|\[Op:[^\]]*\]", " ", text, flags=re.S)
    core = re.sub(r"\s+name:\s*$", "", " ".join(core.split())).rstrip(" .")
    return (f"reading the prepared records failed ({type(error).__name__}: {core}); check "
            "the record files, or prepare them again (training/prepare.py --overwrite)")
