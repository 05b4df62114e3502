"""Register step: log the trained model in MLflow's registry behind the champion gate.

A thin step of the reference project: the work is :func:`cnai.registry.register.register`.
"""

from cnai.registry.register import register

__all__ = ["register"]
