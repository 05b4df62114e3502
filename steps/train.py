"""Train step: distributed PyTorch DDP training on Ray.

A thin step of the reference project: the work is :func:`cnai.training.step.train`.
"""

from cnai.training.step import run_trial, train

__all__ = ["run_trial", "train"]
