"""Learned exit decisions (BERxiT): after the exits are trained, a small head per layer learns,
with the encoder and exits frozen, whether that layer's label for a word already equals the last
exit's. The "learned" criterion halts a word when its head says so with probability above the
threshold. The model bundle (`seqexit.bundle`) stores them beside the model."""

from __future__ import annotations

import torch
from torch import nn


class LearnedExitHeads(nn.Module):
    """One linear unit per layer below the last: hidden state at a word's first piece ->
    logit of "this exit's label is the last exit's" (the last layer always ends)."""

    def __init__(self, hidden_size: int, num_layers: int) -> None:
        super().__init__()
        self.heads = nn.ModuleList(nn.Linear(hidden_size, 1) for _ in range(num_layers - 1))

    def forward(self, layer: int, features: torch.Tensor) -> torch.Tensor:
        """features (..., hidden) at layer `layer` (0-based, below the last) -> logits (...)."""
        return self.heads[layer](features.float())[..., 0]
