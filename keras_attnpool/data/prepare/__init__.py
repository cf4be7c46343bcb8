"""`prepare`: a dataset's media decoded once into sharded records (`run.prepare_dataset`).

`plan` decides which sample goes into which shard, `worker` converts one sample in a worker
process, `shards` writes a shard and the manifest, `output` owns the output folder. This
package imports nothing, so worker processes load only `worker` and what it imports.
"""
