"""The tf.data input pipelines over prepared records (`pipeline.train_dataset`,
`pipeline.eval_dataset`), with the record files they read (`files`), frame sampling
(`sampling`), clip-consistent augmentation (`augment`) and pose targets (`heatmaps`).
"""
