"""Halting from several signals (the "signals" criterion): a small learned score per layer that
reads more than one exit's doubt.

Entropy alone judges a word by one distribution. The signals a word's label is still going to
change are spread out: how sure this exit is (entropy, top probability, margin), which label it
picked (an exit-1 "O" is far safer than an exit-1 "I-MISC"), whether the exit below agreed and
how sure it was, for how many exits in a row the label has held (the streak), and how sure the
neighbours are and what the word before was labelled. Per layer below the last, a two-layer
perceptron reads them and gives the probability that this exit's label already equals the last
exit's; trained on the model's own outputs (no gold labels, `seqexit.training.halting_signals`),
stored beside the model by the bundle.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

SIGNALS_HIDDEN = 32  # units of each layer's perceptron


def num_signals(num_labels: int, streak: bool = True) -> int:
    """Features per word: 3 of this exit, the label (one-hot), 3 of the exit below, the two
    neighbours' entropies, the word before's label (one-hot) and, last, the streak. Heads fitted
    before the streak existed read all but the last."""
    return 8 + 2 * num_labels + int(streak)


def exit_summary(logits: torch.Tensor) -> dict[str, torch.Tensor]:
    """(..., words, labels) -> normalised entropy, top probability and label, (..., words) each."""
    probs = logits.float().softmax(-1)
    entropy = -(probs * probs.clamp_min(1e-12).log()).sum(-1) / math.log(max(probs.shape[-1], 2))
    top, label = probs.max(-1)
    return {"entropy": entropy, "top": top, "label": label, "probs": probs}


def signal_features(
    logits: torch.Tensor, below: dict[str, torch.Tensor] | None, word_mask: torch.Tensor
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The signals of every word at one exit.

    logits: (batch, words, labels) of this exit; below: what this function returned for the exit
    below (entropy, top, label, streak: (batch, words) each), None at the first exit; word_mask:
    (batch, words) bool, False on padding (a neighbour that is not there reads zeros).
    Returns (features (batch, words, `num_signals`), this exit's entropy, top, label and streak:
    the number of exits in a row, ending here, that gave this label)."""
    now = exit_summary(logits)
    labels = logits.shape[-1]
    mask = word_mask.to(now["entropy"].dtype)
    entropy = now["entropy"] * mask
    two = now["probs"].topk(min(2, labels), dim=-1).values
    margin = two[..., 0] - (two[..., 1] if labels > 1 else 0.0)
    one_hot = F.one_hot(now["label"], labels).float() * mask[..., None]
    if below is None:
        previous = torch.zeros(*entropy.shape, 3, device=entropy.device)
        streak = torch.ones_like(now["entropy"])
    else:
        same = now["label"].eq(below["label"]).float()
        previous = torch.stack([below["entropy"], below["top"], same], -1)
        streak = same * below["streak"] + 1.0
    left = F.pad(entropy, (1, 0))[..., :-1]  # (batch, words): the word before's entropy
    right = F.pad(entropy, (0, 1))[..., 1:]
    left_label = F.pad(one_hot, (0, 0, 1, 0))[..., :-1, :]
    features = torch.cat([
        torch.stack([now["entropy"], now["top"], margin], -1), one_hot, previous,
        torch.stack([left, right], -1), left_label, (1.0 - 1.0 / streak)[..., None],  # streak 1, 2, 3 -> 0, 1/2, 2/3
    ], -1)
    return features, {"entropy": now["entropy"], "top": now["top"], "label": now["label"], "streak": streak}


class HaltingSignals(nn.Module):
    """One perceptron per layer below the last: signals (..., `num_signals`) -> logit of
    "this exit's label is the last exit's" (the last layer always ends). streak=False: heads
    that do not read the streak (those fitted before it existed)."""

    def __init__(self, num_labels: int, num_layers: int, hidden: int = SIGNALS_HIDDEN, streak: bool = True) -> None:
        super().__init__()
        self.num_labels = num_labels
        self.width = num_signals(num_labels, streak)
        self.heads = nn.ModuleList(
            nn.Sequential(nn.Linear(self.width, hidden), nn.ReLU(), nn.Linear(hidden, 1))
            for _ in range(num_layers - 1)
        )

    def forward(self, layer: int, features: torch.Tensor) -> torch.Tensor:
        """features (..., `num_signals`) at layer `layer` (0-based, below the last) -> logits (...)."""
        return self.heads[layer](features[..., :self.width])[..., 0]
