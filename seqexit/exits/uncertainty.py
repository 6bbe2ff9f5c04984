"""How unsure an exit is about a word: normalised entropy, and its max over a window of words."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def normalised_entropy(logits: torch.Tensor) -> torch.Tensor:
    """(..., labels) -> (...): entropy of softmax(logits) / log(labels), in [0, 1].

    Computed from log-softmax, so saturated logits give 0 rather than NaN."""
    log_p = F.log_softmax(logits.float(), dim=-1)
    p = log_p.exp()
    entropy = -torch.where(p > 0, p * log_p, 0.0).sum(-1)  # 0 * log 0 = 0, even where log_p = -inf
    return (entropy / math.log(logits.shape[-1])).clamp_(0.0, 1.0)


def window_uncertainty(uncertainty: torch.Tensor, word_mask: torch.Tensor, window: int) -> torch.Tensor:
    """Max of `uncertainty` over words i-k..i+k of the same row.

    uncertainty, word_mask: (batch, words); padded words never widen a window. Returns
    (batch, words), padded positions 0."""
    if window == 0:
        return uncertainty.masked_fill(~word_mask, 0.0)
    values = uncertainty.masked_fill(~word_mask, float("-inf"))[:, None, :]  # (batch, 1, words)
    pooled = F.max_pool1d(values, kernel_size=2 * window + 1, stride=1, padding=window)[:, 0, :]
    return pooled.masked_fill(~word_mask, 0.0)
