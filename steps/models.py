"""Model factories the train step can build (``settings.model_factory = module:function``).

A factory is any importable function returning a ``torch.nn.Module`` that maps a
float32 batch shaped ``(n, *DatasetSpec.feature_shape)`` to ``(n, len(classes))``
logits. The train step calls it with the model hyperparameters it was given
(the hyperparameters it declares, see :mod:`cnai.training.hparams` and
:func:`cnai.training.loop.build_model`) plus ``input_shape`` and ``num_classes``
when the factory accepts them. The module must be picklable (plain ``nn.Module``
subclasses defined at module level are), since the model is logged to MLflow and
shipped to Ray workers.
"""

from __future__ import annotations

import torch
from torch import nn


class DigitsCNN(nn.Module):
    """Two 3x3 convolutions, a 2x2 max-pool and a two-layer classifier head."""

    def __init__(
        self,
        channels: int = 16,
        hidden: int = 64,
        dropout: float = 0.1,
        input_shape: tuple[int, ...] = (1, 8, 8),
        num_classes: int = 10,
        input_scale: float = 16.0,
    ) -> None:
        super().__init__()
        if len(input_shape) != 3:
            raise ValueError(f"input_shape {input_shape}: expected (channels, height, width)")
        in_channels, height, width = input_shape
        self.input_scale = float(input_scale)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, channels, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, 2 * channels, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        flat = 2 * channels * (height // 2) * (width // 2)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(flat, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for a batch of images shaped ``(n, *input_shape)``."""
        return self.head(self.features(x / self.input_scale))


def digits_cnn(
    channels: int = 16,
    hidden: int = 64,
    dropout: float = 0.1,
    input_shape: tuple[int, ...] = (1, 8, 8),
    num_classes: int = 10,
) -> nn.Module:
    """The default model: a small CNN for 8x8 digit images with pixel values 0..16.

    Args:
        channels: filters of the first convolution (the second has twice as many).
        hidden: units of the hidden classifier layer.
        dropout: dropout probability before the output layer.
        input_shape: ``(channels, height, width)`` of one example.
        num_classes: number of output logits.
    """
    if channels < 1 or hidden < 1:
        raise ValueError("channels and hidden must be at least 1")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout {dropout}: must be in [0, 1)")
    return DigitsCNN(channels, hidden, dropout, tuple(input_shape), num_classes)


class LinearClassifier(nn.Module):
    """Multinomial logistic regression over the flattened features."""

    def __init__(self, input_size: int, num_classes: int, input_scale: float) -> None:
        super().__init__()
        self.input_scale = float(input_scale)
        self.linear = nn.Linear(input_size, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for a batch shaped ``(n, *input_shape)``."""
        return self.linear(x.flatten(1) / self.input_scale)


def linear(
    input_shape: tuple[int, ...] = (1, 8, 8), num_classes: int = 10, input_scale: float = 16.0
) -> nn.Module:
    """A tiny alternative model (used by benchmarks and as a plug-in example)."""
    size = 1
    for dim in input_shape:
        size *= dim
    return LinearClassifier(size, num_classes, input_scale)
