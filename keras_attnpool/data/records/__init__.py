"""Prepared records: their schema (`schema`), their protobuf messages built without
TensorFlow (`proto`, for prepare's workers) and the frame index of a shard (`frame_index`).

Import the modules themselves: this package imports nothing, so a worker that needs only
`proto` loads no TensorFlow.
"""
