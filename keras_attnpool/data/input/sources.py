"""Where a pipeline's records come from: the two storage layouts of prepared shards behind
one reader interface.

A `RecordSource` reads (shard, serialized) pairs from its files, parses them (one record for
evaluation, a batch of them for training) and finds the JPEGs of the sampled frames:

- `WholeRecords`: the shards' records themselves (`records.schema`); the sampled JPEGs are
  picked from the parsed records.
- `IndexedShards`: the frame index next to each shard (`records.frame_index`): the small
  entries are read and parsed, and only the sampled JPEGs are read from the shard. That
  saves reading, checksumming and copying the frames of a clip that a sample does not use.
  Training holds indexes of up to `INDEX_IN_MEMORY_BYTES` in memory (HMDB51's take a few
  MB): then the whole dataset is shuffled each epoch, where streamed records are only mixed
  in a buffer.

`record_source` chooses one from the files, once per pipeline. Both give the same batches.
A source can be narrowed to some clips by their video ids (`RecordSource.selected`): a slice
of train held out for evaluation during training is left out of one pipeline and is the
only input of another.
"""

from __future__ import annotations

import abc
import copy
import logging
from typing import Optional, Sequence, Tuple

import tensorflow as tf

from keras_attnpool.data.input import sampling
from keras_attnpool.data.input.files import pipeline_files
from keras_attnpool.data.input import indexed
from keras_attnpool.data.records.schema import CONTEXT_SPEC, SEQUENCE_SPEC, parse_example

logger = logging.getLogger("keras_attnpool.data.input")
AUTOTUNE = tf.data.AUTOTUNE
INDEX_IN_MEMORY_BYTES = 64 * 2**20
Item = Tuple[tf.Tensor, tf.Tensor]  # (shard file name, serialized record or index entry)


def no_records_error(files: Sequence[str]) -> ValueError:
    return ValueError(f"{files[0]} ... {files[-1]}: no records in these files; rerun "
                      "training/prepare.py")


def _gather_rows(values: tf.Tensor, indices: tf.Tensor) -> tf.Tensor:
    """values[b, indices[b, t]] for values [B, n] (or ragged [B, (n)]), indices [B, T]."""
    out = tf.gather(values, indices, batch_dims=1)
    return out.to_tensor() if isinstance(out, tf.RaggedTensor) else out


def id_fingerprints(video_ids: Sequence[str]) -> tf.Tensor:
    """Sorted int64 fingerprints of video ids (what `RecordSource.selected` matches on)."""
    if not len(video_ids):
        return tf.zeros([0], tf.int64)
    return tf.sort(_fingerprint(tf.constant(list(video_ids), tf.string)))


def _fingerprint(video_id: tf.Tensor) -> tf.Tensor:
    return tf.strings.to_hash_bucket_fast(video_id, 2**62)


class RecordSource(abc.ABC):
    """The record files of one pipeline, read in one storage layout."""

    def __init__(self, files: Sequence[str]) -> None:
        self.files = list(files)
        # (sorted id fingerprints, keep): only those clips (keep) or all but those.
        self.selection: Optional[Tuple[tf.Tensor, bool]] = None

    def selected(self, video_ids: Optional[Sequence[str]], keep: bool) -> RecordSource:
        """This source with only the clips of `video_ids` (keep=True) or all but those
        (keep=False); unchanged for None."""
        out = copy.copy(self)
        if video_ids is not None:
            out.selection = (id_fingerprints(video_ids), keep)
        return out

    def _wanted(self, serialized: tf.Tensor) -> tf.Tensor:
        """Whether an item passes the selection (its video id, parsed alone)."""
        fingerprints, keep = self.selection
        context, _ = tf.io.parse_single_sequence_example(
            serialized, context_features={"video_id": CONTEXT_SPEC["video_id"]})
        value = _fingerprint(context["video_id"])
        at = tf.searchsorted(fingerprints, value[None])[0]
        found = tf.reduce_any(tf.equal(fingerprints[at:at + 1], value))
        return found if keep else tf.logical_not(found)

    def _narrowed(self, ds: tf.data.Dataset) -> tf.data.Dataset:
        """`ds` of (shard, serialized) pairs with the selection applied."""
        if self.selection is None:
            return ds
        return ds.filter(lambda shard, serialized: self._wanted(serialized))

    @abc.abstractmethod
    def _open(self, shard: tf.Tensor) -> tf.data.Dataset:
        """The serialized items (records or index entries) of one shard, in file order."""

    @abc.abstractmethod
    def parse(self, serialized: tf.Tensor, keypoints: bool = False) -> dict:
        """One item -> the record's features (keypoints only when asked for)."""

    @abc.abstractmethod
    def parse_batch(self, serialized: tf.Tensor, keypoints: bool) -> dict:
        """A batch of items -> their features, batched: context values [B], `labels`
        ragged [B, (K)], what `frame_batch` needs, and when asked `keypoints` ragged
        [B, (num_frames), (people * 48)]."""

    @abc.abstractmethod
    def frames(self, shard: tf.Tensor, record: dict, indices: tf.Tensor) -> tf.Tensor:
        """The JPEGs of one parsed record's frames at `indices`: tf.string [len(indices)]."""

    @abc.abstractmethod
    def frame_batch(self, shards: tf.Tensor, records: dict, indices: tf.Tensor) -> tf.Tensor:
        """The JPEGs of a parsed batch's frames at `indices` [B, T]: tf.string [B, T]."""

    def for_pipeline(self, input_context: Optional[tf.distribute.InputContext]
                     ) -> RecordSource:
        """This source over the share of the files that one input pipeline (host) reads."""
        out = copy.copy(self)
        out.files = pipeline_files(self.files, input_context)
        return out

    def first_record(self) -> dict:
        """The first item's features (to look at labels and frame sizes), selected or
        not."""
        for serialized in self._open(tf.constant(self.files[0])).take(1):
            return self.parse(serialized)
        raise no_records_error(self.files)

    def _items(self, shard: tf.Tensor) -> tf.data.Dataset:
        return self._narrowed(self._open(shard).map(lambda serialized: (shard, serialized)))

    def clips(self) -> list:
        """(video_id, label) of every record of the files, in file order (label: the
        class, or -1 for multi-label records). Reads only the records' ids and labels."""
        spec = {name: CONTEXT_SPEC[name] for name in ("video_id", "label")}
        spec["label"] = tf.io.FixedLenFeature([], tf.int64, default_value=-1)
        out = []
        for shard in self.files:
            for chunk in self._items(tf.constant(shard)).batch(4096):
                context, _, _ = tf.io.parse_sequence_example(chunk[1], context_features=spec)
                out += zip([v.decode() for v in context["video_id"].numpy().tolist()],
                           context["label"].numpy().tolist())
        return out

    def stream(self, seed: Optional[int], cycle_length: int, repeat: bool) -> tf.data.Dataset:
        """(shard, serialized) pairs of every file, shuffled across files when `seed` is
        given."""
        ds = tf.data.Dataset.from_tensor_slices(self.files)
        if seed is not None:
            # File order first: records of one shard are neighbours, so a record-level
            # buffer alone would mix only a few shards.
            ds = ds.shuffle(len(self.files), seed=seed, reshuffle_each_iteration=True)
        if repeat:
            ds = ds.repeat()
        # Several shards read at once, round-robin; deterministic so the seed fixes the order.
        return ds.interleave(self._items, cycle_length=min(cycle_length, len(self.files)),
                             block_length=1, num_parallel_calls=AUTOTUNE, deterministic=True)

    def training_records(self, seed: Optional[int], cycle_length: int, shuffle_buffer: int,
                         repeat: bool) -> tf.data.Dataset:
        """The shuffled (shard, serialized) pairs training batches are formed from."""
        # Records of the interleaved shards are mixed further in a buffer.
        return self.stream(seed, cycle_length, repeat).shuffle(
            shuffle_buffer, seed=seed, reshuffle_each_iteration=True)


class WholeRecords(RecordSource):
    """Shards read record by record; the sampled JPEGs are gathered from each record."""

    def _open(self, shard: tf.Tensor) -> tf.data.Dataset:
        return tf.data.TFRecordDataset(shard)

    def parse(self, serialized: tf.Tensor, keypoints: bool = False) -> dict:
        return parse_example(serialized, keypoints=keypoints)

    def parse_batch(self, serialized: tf.Tensor, keypoints: bool) -> dict:
        # `frames` [B, max num_frames], padded with empty strings.
        sequence_spec = dict(SEQUENCE_SPEC) if keypoints else {
            "frames": SEQUENCE_SPEC["frames"]}
        context, sequence, _ = tf.io.parse_sequence_example(
            serialized, context_features=CONTEXT_SPEC, sequence_features=sequence_spec)
        return {**context, **sequence}

    def frames(self, shard: tf.Tensor, record: dict, indices: tf.Tensor) -> tf.Tensor:
        return sampling.gather_frames(record["frames"], indices)

    def frame_batch(self, shards: tf.Tensor, records: dict, indices: tf.Tensor) -> tf.Tensor:
        return _gather_rows(records["frames"], indices)


class IndexedShards(RecordSource):
    """Frame index entries read and parsed; only the sampled JPEGs read from the shards."""

    def __init__(self, files: Sequence[str], in_memory: Optional[bool] = None) -> None:
        super().__init__(files)
        self.in_memory = in_memory

    def _open(self, shard: tf.Tensor) -> tf.data.Dataset:
        return tf.data.TFRecordDataset(tf.strings.join([shard, indexed.INDEX_SUFFIX]))

    def parse(self, serialized: tf.Tensor, keypoints: bool = False) -> dict:
        return indexed.parse_index_entry(serialized, keypoints=keypoints)

    def parse_batch(self, serialized: tf.Tensor, keypoints: bool) -> dict:
        # `frame_records` ragged [B, (num_frames)].
        sequence_spec = dict(indexed.INDEX_SEQUENCE_SPEC) if keypoints else {}
        context, sequence, _ = tf.io.parse_sequence_example(
            serialized, context_features=indexed.INDEX_CONTEXT_SPEC,
            sequence_features=sequence_spec)
        return {**context, **sequence}

    def frames(self, shard: tf.Tensor, record: dict, indices: tf.Tensor) -> tf.Tensor:
        positions = tf.gather(record["frame_records"], indices)
        frames = indexed.read_frames(tf.fill(tf.shape(positions), shard), positions)
        return tf.ensure_shape(frames, indices.shape)

    def frame_batch(self, shards: tf.Tensor, records: dict, indices: tf.Tensor) -> tf.Tensor:
        positions = _gather_rows(records["frame_records"], indices)
        files = tf.broadcast_to(shards[:, None], tf.shape(positions))
        return tf.ensure_shape(indexed.read_frames(files, positions), indices.shape)

    def training_records(self, seed: Optional[int], cycle_length: int, shuffle_buffer: int,
                         repeat: bool) -> tf.data.Dataset:
        if not self._held_in_memory():
            return super().training_records(seed, cycle_length, shuffle_buffer, repeat)
        # Small enough to hold: shuffled whole, and no per-record reading.
        return self._in_memory(seed, repeat)

    def _held_in_memory(self) -> bool:
        """Asked for, or (None) when all the indexes together take at most
        INDEX_IN_MEMORY_BYTES."""
        if self.in_memory is not None:
            return bool(self.in_memory)
        size = sum(tf.io.gfile.stat(indexed.index_path(f)).length for f in self.files)
        return size <= INDEX_IN_MEMORY_BYTES

    def _in_memory(self, seed: Optional[int], repeat: bool) -> tf.data.Dataset:
        """Every index entry, loaded now: (shard, entry) pairs, in a new uniformly random
        order each epoch (a shuffle of the whole dataset, which a stream of records can
        only approximate)."""
        shards, entries = [], []
        for shard in self.files:
            for chunk in tf.data.TFRecordDataset(indexed.index_path(shard)).batch(4096):
                chunk = chunk.numpy().tolist()
                entries += chunk
                shards += [shard] * len(chunk)
        if not entries:
            raise no_records_error(self.files)
        ds = self._narrowed(tf.data.Dataset.from_tensor_slices((shards, entries)))
        if seed is not None:
            ds = ds.shuffle(len(entries), seed=seed, reshuffle_each_iteration=True)
        return ds.repeat() if repeat else ds


def record_source(files: Sequence[str], use_index: Optional[bool] = None,
                  index_in_memory: Optional[bool] = None) -> RecordSource:
    """`IndexedShards` when every shard has a current frame index (or `use_index=True`,
    which requires one), else `WholeRecords`."""
    if use_index is False:
        return WholeRecords(files)
    missing = [f for f in files if not indexed.has_index(f)]
    if use_index and missing:
        raise FileNotFoundError(f"{indexed.index_path(missing[0])}: no frame index "
                                "(rerun training/prepare.py, which writes it, or pass "
                                "use_index=False to read whole records)")
    if missing:
        return WholeRecords(files)
    if not indexed.index_is_current(files[0]):
        message = (f"{indexed.index_path(files[0])}: an index of records prepared by an "
                   "earlier version (format 1, plain JPEG frames)")
        if use_index:
            raise ValueError(f"{message}; prepare them again (training/prepare.py "
                             "--overwrite), or pass use_index=False to read whole records")
        logger.warning("%s: reading whole records, which is slower; prepare them again "
                       "(training/prepare.py --overwrite) to read only the sampled frames",
                       message)
        return WholeRecords(files)
    return IndexedShards(files, index_in_memory)
