"""The oracle bound of early exit: every word leaves at the earliest layer from which its exit's
label equals the last layer's and stays equal. It loses nothing against full depth by
construction, so its FLOPs speed-up is the most any per-word exit rule could save with these
exits; a real policy is judged by how much of it it reaches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..exits import run_exits
from ..exits.halting import new_counter
from ..model import MultiExitTagger


@dataclass
class OracleBound:
    """Per sentence, each word's oracle exit layer (1-based); the FLOPs it would spend."""

    exit_layers: list[torch.Tensor]  # per sentence: (words,) long
    flops: int
    flops_full: int

    @property
    def flops_speedup(self) -> float:
        return self.flops_full / self.flops if self.flops else float("nan")

    @property
    def mean_exit_layer(self) -> float:
        layers = torch.cat(self.exit_layers).float() if self.exit_layers else torch.zeros(0)
        return float(layers.mean()) if layers.numel() else float("nan")


def oracle_exit_layers(label_ids: torch.Tensor) -> torch.Tensor:
    """(layers, words) label ids of every exit -> (words,) the earliest 1-based layer from which
    every exit's label equals the last exit's."""
    same = label_ids == label_ids[-1:]  # (L, words)
    settled = same.flip(0).long().cumprod(0).flip(0)  # (L, words): 1 where layers l..L all agree
    return label_ids.shape[0] - settled.sum(0) + 1


def oracle_flops(model: MultiExitTagger, sentences: Sequence[Sequence[str]], exit_layers: Sequence[torch.Tensor]) -> tuple[int, int]:
    """(spent, full) FLOPs if each word ran exactly `exit_layers` layers, counted as the engine
    counts TOKEE (`seqexit.exits.flops`): a sentence runs while any word does, [CLS]/[SEP] with
    it, and every exit reads each of its words. Each sentence counts as one sequence."""
    counter = new_counter(model)
    pieces = model.pieces.word_pieces(sentences)
    for per_word, layers in zip(pieces, exit_layers):
        if not per_word:
            continue
        counts = torch.tensor([len(p) for p in per_word])
        depth = int(layers.max())
        piece_exit = torch.cat([torch.tensor([depth]), layers.repeat_interleave(counts), torch.tensor([depth])])[None]
        n_pieces = torch.tensor([piece_exit.shape[1]])
        n_words = torch.tensor([len(per_word)])
        counter.add(counter.rows_spent(n_pieces, piece_exit, n_words * depth), counter.rows_full(n_pieces, n_words))
    return counter.spent, counter.full


def oracle_bound(model: MultiExitTagger, sentences: Sequence[Sequence[str]], *, batch_size: int = 64) -> OracleBound:
    """The oracle exit layer of every word of `sentences` (word lists) and its FLOPs."""
    outputs = run_exits(model, sentences, batch_size=batch_size, all_exits=True)
    layers = [oracle_exit_layers(out.label_ids) for out in outputs]
    spent, full = oracle_flops(model, sentences, layers)
    return OracleBound(layers, spent, full)
