"""Tune step: run a Katib Experiment spec on Ray Tune.

A thin step of the reference project: the work is :func:`cnai.tuning.step.tune`.
"""

from cnai.tuning.step import tune

__all__ = ["tune"]
