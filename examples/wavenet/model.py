"""A small WaveNet (van den Oord et al. 2016): stacked dilated causal convolutions with gated
activations, residual and skip connections, predicting the next mu-law sample."""

from __future__ import annotations

import torch
from torch import nn

DILATIONS = (1, 2, 4, 8, 16, 32, 64, 128)


class CausalConv1d(nn.Conv1d):
    """A convolution that sees only the past: pads on the left by (kernel - 1) * dilation."""

    def __init__(self, channels_in: int, channels_out: int, kernel: int, dilation: int = 1) -> None:
        super().__init__(channels_in, channels_out, kernel, dilation=dilation)
        self.left = (kernel - 1) * dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(nn.functional.pad(x, (self.left, 0)))


class ResidualBlock(nn.Module):
    def __init__(self, residual: int, skip: int, dilation: int) -> None:
        super().__init__()
        self.conv = CausalConv1d(residual, 2 * residual, kernel=2, dilation=dilation)
        self.residual = nn.Conv1d(residual, residual, 1)
        self.skip = nn.Conv1d(residual, skip, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        filter_, gate = self.conv(x).chunk(2, dim=1)
        z = torch.tanh(filter_) * torch.sigmoid(gate)
        return x + self.residual(z), self.skip(z)


class WaveNet(nn.Module):
    """Class indices [batch, time] -> logits [batch, classes, time]; output t predicts input t+1.

    The receptive field is 1 + sum(DILATIONS) + 1 = 257 samples (35 ms at 7,350 Hz).
    """

    def __init__(self, classes: int = 256, residual: int = 16, skip: int = 32) -> None:
        super().__init__()
        self.embed = nn.Embedding(classes, residual)
        self.causal = CausalConv1d(residual, residual, kernel=2)
        self.blocks = nn.ModuleList(ResidualBlock(residual, skip, d) for d in DILATIONS)
        self.head = nn.Sequential(nn.ReLU(), nn.Conv1d(skip, skip, 1), nn.ReLU(), nn.Conv1d(skip, classes, 1))

    @property
    def receptive_field(self) -> int:
        return 2 + sum(DILATIONS)

    def forward(self, samples: torch.Tensor) -> torch.Tensor:
        x = self.causal(self.embed(samples).transpose(1, 2))
        skips = torch.zeros((), dtype=x.dtype)
        for block in self.blocks:
            x, skip = block(x)
            skips = skips + skip
        logits: torch.Tensor = self.head(skips)
        return logits


def next_sample_loss(model: WaveNet, batch: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy (nats per sample) of predicting each sample from those before it,
    counted only where the whole receptive field lies inside the crop."""
    logits = model(batch[:, :-1])
    start = model.receptive_field - 1
    return nn.functional.cross_entropy(logits[:, :, start:], batch[:, start + 1:])
