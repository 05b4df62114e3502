"""Distributed training machinery behind the train step.

- :mod:`cnai.training.data`: reading the Iceberg table at a snapshot, split by
  row-key hash, and partitioned per worker, straight from Arrow into numpy/tensors;
- :mod:`cnai.training.loop`: the epoch loop shared by ``run_trial`` and the workers;
- :mod:`cnai.training.group`: a Ray placement group of actors running DDP, with
  failure detection and bounded restarts;
- :mod:`cnai.training.checkpoint`: per-epoch checkpoints to a folder or ``s3://``;
- :mod:`cnai.training.logging`: the MLflow run the driver owns.
"""
