"""Score step: predictions of the champion model for the rows a snapshot added.

A thin step of the reference project: the work is :func:`cnai.scoring.score`.
"""

from cnai.scoring import score

__all__ = ["score"]
