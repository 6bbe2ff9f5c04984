"""An analytic FLOP count of the encoder work the engine does, and of a full forward.

Per layer, for one sentence with n word pieces (keys) of which a are active (queries),
hidden size H, feed-forward size I (a multiply-add counts 2):

    keys + values          2 * 2nH^2          every piece, halted ones included
    queries + attn output  2 * 2aH^2          active pieces only
    attention              2anH + 2anH        scores and weighted sum, per head summed
    feed-forward           2 * 2aHI           active pieces only

and an exit costs 2HC per word it reads (C labels), more for an exit that reads more
(`ExitHead.flops_per_word`: neighbours, past, future imitation, hidden layer), counted at the
costliest exit a run reads. A full forward is the same with a = n
at every layer and the last exit only. Embedding lookups, LayerNorm, softmax, activations and
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
    exit_flops: int = 0  # FLOPs of one word's exit read, at the costliest exit read; 0: 2HC (a linear exit)

    def rows_spent(self, n_pieces: torch.Tensor, piece_exit: torch.Tensor, words_read: torch.Tensor) -> torch.Tensor:
        """FLOPs spent per row, from where every piece stopped.

        n_pieces: (rows,) real pieces; piece_exit: (rows, pieces) the number of layers each piece
        ran as a query (0 on padding; a row's [CLS]/[SEP] run as long as the row); words_read:
        (rows,) exit classifier reads. A row runs layer l while any piece's exit is > l, and
        then all its pieces are keys."""
        return self.rows_spent_from(n_pieces, piece_exit.max(1).values, piece_exit.sum(1), words_read)

    def rows_spent_from(self, n_pieces: torch.Tensor, deepest: torch.Tensor | int, queries: torch.Tensor,
                        words_read: torch.Tensor) -> torch.Tensor:
        """`rows_spent` from per-row sums: deepest, the layers the row ran (D); queries, the
        layers each piece ran as a query, summed over its pieces (S). Over the layers, keys
        and values cost n pieces at each of D layers, and queries, attention output,
        feed-forward and scores (n keys per query) S in all."""
        n, deepest, queries = n_pieces.long(), torch.as_tensor(deepest).long(), queries.long()
        h, i = self.hidden, self.intermediate
        exits = (self.exit_flops or 2 * h * self.num_labels) * words_read.long()
        return 4 * h * h * n * deepest + (4 * h * h + 4 * h * n + 4 * h * i) * queries + exits

    def rows_full(self, n_pieces: torch.Tensor, n_words: torch.Tensor) -> torch.Tensor:
        """FLOPs a plain full-depth forward spends per row with these lengths: (rows,) each."""
        n = n_pieces.long()
        h, i = self.hidden, self.intermediate
        per_layer = 8 * h * h * n + 4 * h * n * n + 4 * h * i * n
        return self.num_layers * per_layer + 2 * h * self.num_labels * n_words.long()

    def add(self, spent: torch.Tensor, full: torch.Tensor) -> None:
        """Add per-row counts (see `rows_spent`, `rows_full`)."""
        self.spent += int(spent.sum())
        self.full += int(full.sum())

    @property
    def speedup(self) -> float:
        return self.full / self.spent if self.spent else float("nan")

    def merge(self, other: FlopCounter) -> None:
        self.spent += other.spent
        self.full += other.full
