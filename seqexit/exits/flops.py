"""An analytic FLOP count of the encoder work the engine does, and of a full forward.

Per layer, for one sentence with n word pieces (keys) of which a are active (queries),
hidden size H, feed-forward size I (a multiply-add counts 2):

    keys + values          2 * 2nH^2          every piece, halted ones included
    queries + attn output  2 * 2aH^2          active pieces only
    attention              2anH + 2anH        scores and weighted sum, per head summed
    feed-forward           2 * 2aHI           active pieces only

and an exit costs 2HC per word it reads (C labels). A full forward is the same with a = n at
every layer and the last exit only. Embedding lookups, LayerNorm, softmax, activations and
biases are lower order and left out; padding is left out on both sides, so the ratio measures
what halting saves, not how well batches are packed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class FlopCounter:
    """Accumulates FLOPs spent and the FLOPs a full forward would spend on the same input."""

    hidden: int
    intermediate: int
    num_labels: int
    num_layers: int
    spent: int = 0
    full: int = 0

    def layer(self, n_keys: torch.Tensor, n_active: torch.Tensor) -> None:
        """One layer over rows with n_keys real pieces and n_active active pieces: (rows,) each."""
        n, a = n_keys.long(), n_active.long()
        h, i = self.hidden, self.intermediate
        self.spent += int(4 * h * h * n.sum() + 4 * h * h * a.sum() + 4 * h * (a * n).sum() + 4 * h * i * a.sum())

    def exits(self, n_words: int | torch.Tensor) -> None:
        """Exit classifiers applied to n_words words."""
        self.spent += int(2 * self.hidden * self.num_labels * int(n_words))

    def full_forward(self, n_pieces: torch.Tensor, n_words: torch.Tensor) -> None:
        """Add the cost of a plain full-depth forward of rows with these lengths: (rows,) each."""
        n = n_pieces.long()
        h, i = self.hidden, self.intermediate
        per_layer = 8 * h * h * n.sum() + 4 * h * (n * n).sum() + 4 * h * i * n.sum()
        self.full += int(self.num_layers * per_layer + 2 * h * self.num_labels * n_words.long().sum())

    @property
    def speedup(self) -> float:
        return self.full / self.spent if self.spent else float("nan")

    def merge(self, other: FlopCounter) -> None:
        self.spent += other.spent
        self.full += other.full
