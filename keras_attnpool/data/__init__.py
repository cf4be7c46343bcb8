"""Data, in the order it flows: `datasets` (official annotation files -> samples), `video`
(decoding), `prepare` (samples -> sharded records, once), `records` (their schema and frame
index), `input` (records -> tf.data batches); `joints` and `media` hold the constants they
share, `synthetic` the built-in demo data.

This package imports nothing itself: prepare's worker processes import only what they use.
"""
